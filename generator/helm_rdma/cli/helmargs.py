"""The helm arguments after `--` that helm-rdma refuses, in one list, and the scan that finds them.

install, upgrade, template, diff and uninstall hand what follows `--` to helm as it is, after helm-rdma's own flags;
helm takes the last value of a repeated flag and merges every values flag over the chart's values. So an argument
there that changes the values, the rendered manifests or the cluster or namespace helm acts on would make helm install
something helm-rdma never resolved or checked (the schema, doctor, the chart's rules, the API key Secret, the group
ports' OCI rules) or never wrote into the kept chart. Those are refused, before anything runs or is written, with
the way to say the same thing to helm-rdma itself. Per command:

- install, upgrade: what they check is what helm installs; diff: it must show what upgrade with the same options
  would do, not an upgrade nobody will run; template: its manifests are what GitOps applies, rendered from the values
  helm-rdma layered (preset < model < -f < --set), never from helm's merge of other values over them;
  uninstall: another namespace or cluster would uninstall another release while helm-rdma drops this one's kept
  chart (and reads its timeout from it). The one list serves them all: a values flag after `uninstall --` is not
  helm uninstall's either.

Helm's flags (what each changes), read from helm v3.17.4 and v4.2.4 and helm-diff v3.15.11:
- values: addValueOptionsFlags (helm v3 cmd/helm/flags.go:45-52, v4 pkg/cmd/flags.go:50-57: -f/--values, --set,
  --set-string, --set-file, --set-json, --set-literal), upgrade's --reuse-values and --reset-then-reuse-values
  (v3 cmd/helm/upgrade.go:270-271, v4 pkg/cmd/upgrade.go:288-289), helm-diff cmd/upgrade.go:235-243;
- manifests: bindPostRenderFlag (v3 cmd/helm/flags.go:118-122, v4 pkg/cmd/flags.go:170-173: --post-renderer,
  --post-renderer-args), helm-diff cmd/upgrade.go:257-258;
- target: EnvSettings.AddFlags (v3 pkg/cli/environment.go:147-153, v4 :153-159: -n/--namespace, --kubeconfig,
  --kube-context, --kube-apiserver), helm-diff cmd/upgrade.go:223-225.

Everything else passes, among them: --kube-token, --kube-as-user, --kube-as-group (who helm is on the same server),
--kube-ca-file, --kube-tls-server-name, --kube-insecure-skip-tls-verify (how helm checks that server's certificate);
--repo, --version, --verify, --devel (helm-rdma hands helm a chart directory, which LocateChart takes as it is
before any repository is asked: v3 pkg/action/install.go:740-758, v4 :890-906); --reset-values (drops the last
release's values, the chart's own are what helm-rdma checked); --api-versions, --kube-version, --is-upgrade,
--enable-dns (the chart reads no .Capabilities, .Release.IsUpgrade or DNS: tests/test_helm_args.py holds that);
--wait, --atomic, --create-namespace, --description, --labels, --no-hooks (refused by install and upgrade when the
release provisions: commands/deploy.py), --show-only, --output; and --timeout where the command has none of its own
(template, diff) or reads the one given after `--` (uninstall). install's and upgrade's own --timeout is the plan's
start-up budget, which helm-rdma's wait also keeps: a second one after `--` would win at helm alone (the last value
of a repeated flag) and cut the provisioning hook short, so it is refused there; so is their --dry-run after `--`,
which helm-rdma would not know of (it would create the API key Secret and replace the kept chart).

How pflag reads an argument (spf13/pflag v1.0.10 flag.go, parseArgs 1131, parseLongArg 980, parseSingleShortArg
1040; helm 3.17 uses v1.0.5, the same rules): `--name=value` or `--name value`; a run of shorthand letters, where a
letter whose flag takes a value takes the rest as its value (`-nfoo`, `-n=foo`, `-gn foo`), else the next argument.
Every argument is scanned, even one that is another flag's value (`--description --set` is refused although helm
would read "--set" as the description) and those after a second `--`: helm stops reading flags there, but when it
starts a plugin (helm diff) it takes -n and the kube flags out of the plugin's arguments wherever they stand
(manuallyProcessArgs, v3 cmd/helm/load_plugins.go:154-193, v4 pkg/cmd/load_plugins.go:170-209; tests/test_plugin.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from helm_rdma.errors import HelmArgumentError


@dataclass(frozen=True)
class Refused:
    """Flags of helm that helm-rdma refuses after `--`, what helm would do with them, and the fix.

    Attributes:
        flags: The flag's spellings, long and short (`--values`, `-f`).
        effect: What helm would do, after "helm would".
        fix: The fix; "{own}" in it is the command's own option that says the same, "{command}" the command.
        own: The command's own option for it, None when only another way exists; "" for the flag as it was given
            (`-f` or `--values`). A command without that option gets ``fix_otherwise``.
        fix_otherwise: The fix when the command has no option of its own for it.
        only_in: The commands that refuse it (none: every command).
    """

    flags: tuple[str, ...]
    effect: str
    fix: str
    own: str | None = None
    fix_otherwise: str = ""
    only_in: tuple[str, ...] = ()


CHECKED = "the schema, doctor, the chart's rules and the group ports' OCI rules"
REFUSED: tuple[Refused, ...] = (
    *(Refused((flag, *short), f"merge these values over the ones helm-rdma resolved, checked ({CHECKED}) and "
                              "wrote into the chart, and use values nobody checked",
              "pass {own} before -- instead: helm-rdma merges its own {own} into the values it checks and writes "
              "into the chart", own="", fix_otherwise="drop it: {command} takes no values")
      for flag, *short in (("--values", "-f"), ("--set",), ("--set-string",), ("--set-json",), ("--set-file",),
                           ("--set-literal",))),
    *(Refused((flag,), f"merge the last release's values over the ones helm-rdma checked ({CHECKED})",
              "drop it and pass the release's values files and --set values again, before --: the chart helm-rdma "
              "writes holds every value it checked")
      for flag in ("--reuse-values", "--reset-then-reuse-values")),
    *(Refused((flag,), "rewrite the manifests after helm-rdma checked what the chart renders",
              "drop it; to post-render, write the chart with `helm rdma generate` and run helm on it yourself")
      for flag in ("--post-renderer", "--post-renderer-args")),
    Refused(("--namespace", "-n"), "act in another namespace than the one helm-rdma checked and keeps the chart for",
            "pass {own} NAMESPACE before -- instead: helm-rdma checks that namespace and hands it to helm", own="-n",
            fix_otherwise="drop it: {command} acts in $HELM_NAMESPACE"),
    Refused(("--timeout",), "wait by its own timeout while helm-rdma waits by the one it computed (the plan's "
            "start-up budget, with the provisioning hook's), and may cut the hook short",
            "pass --timeout before -- instead: helm-rdma hands it to helm and waits by it too", own="--timeout",
            only_in=("install", "upgrade")),
    Refused(("--dry-run",), "render or simulate only, while helm-rdma, told of no dry run, creates the API key "
            "Secret and replaces the kept chart as for a real install",
            "pass --dry-run (or --dry-run=server) before -- instead: helm-rdma then writes and creates nothing",
            own="--dry-run", only_in=("install", "upgrade")),
    Refused(("--kube-context",), "act on another cluster than the one helm-rdma checked",
            "set HELM_KUBECONTEXT=CONTEXT instead (helm sets it for a plugin from `helm --kube-context CONTEXT "
            "rdma ...`): helm-rdma's checks and the helm it runs both read it"),
    Refused(("--kubeconfig",), "act on another cluster than the one helm-rdma checked",
            "set KUBECONFIG=PATH instead (helm sets it for a plugin from `helm --kubeconfig PATH rdma ...`): "
            "helm-rdma's checks and the helm it runs both read it"),
    Refused(("--kube-apiserver",), "act on another API server than the one helm-rdma checked",
            "set HELM_KUBEAPISERVER=URL instead (helm sets it for a plugin from `helm --kube-apiserver URL rdma "
            "...`): helm-rdma's checks and the helm it runs both read it"),
)
BY_FLAG = {flag: rule for rule in REFUSED for flag in rule.flags}

# The shorthand letters that take a value in the helm command each helm-rdma command runs, besides the refused -f
# and -n: a refused letter after one of them is part of its value (`-ojson`, `-lteam=n`). Helm 3.17 and 4: -l
# --labels, -o --output (install.go, upgrade.go, flags.go bindOutputFlag), -s --show-only and -a --api-versions
# (template.go), -v klog's level (root.go addKlogFlags; pflag gives a one-letter Go flag that shorthand:
# golangflag.go:85-86); helm diff upgrade: -a, -C --context, -D --find-renames (helm-diff cmd/upgrade.go:232,
# cmd/options.go:15-18). A letter not listed is scanned past: pflag refuses a letter it does not know, except in
# helm-diff under HELM_DIFF_IGNORE_UNKNOWN_FLAGS=true, where it skips it and reads the letters after it.
VALUE_SHORTHANDS = {"install": "lov", "upgrade": "lov", "template": "lsav", "diff": "aCD", "uninstall": "v"}


def check_helm_args(args: Sequence[str], *, command: str, offered: Collection[str]) -> None:
    """Refuse the first of ``args`` (what follows `--` in ``command``) that sets values, changes the manifests or
    the cluster or namespace helm acts on (see the module's docstring).

    Args:
        args: The arguments after `--`, as given.
        command: The helm-rdma command (install, upgrade, template, diff, uninstall).
        offered: The command's own option strings (`--set`, `-n`, ...), so that the fix names the one it has.

    Raises:
        HelmArgumentError: One of them is refused (exit 2).
    """
    for argument in args:
        found = refused_flag(argument, command=command)
        if found is not None:
            rule = BY_FLAG[found]
            if rule.only_in and command not in rule.only_in:
                continue
            own = found if rule.own == "" else rule.own
            fix = rule.fix if own is None or own in offered else rule.fix_otherwise
            fix = fix.format(own=own, command=command)
            raise HelmArgumentError(argument=argument, flag=found, command=command, effect=rule.effect, fix=fix)


def refused_flag(argument: str, *, command: str) -> str | None:
    """The refused flag ``argument`` sets, as REFUSED spells it (`--set`, `-n`), or None."""
    if argument.startswith("--"):
        name = "--" + argument[2:].split("=", 1)[0]
        return name if name in BY_FLAG else None
    if not argument.startswith("-"):
        return None
    takes_value = VALUE_SHORTHANDS.get(command, "")
    letters = argument[1:]
    for index, letter in enumerate(letters):
        if f"-{letter}" in BY_FLAG:
            return f"-{letter}"
        if letter in takes_value or letters[index + 1:index + 2] == "=":  # the rest is this letter's value
            return None
    return None
