"""`diff`: what an upgrade would change, before a 405B group spends an hour restarting."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from helm_rdma.cli.base import _chart_options, _helm_args, _namespace_option, _notice, _provision_options, main
from helm_rdma.cli.params import UPGRADE_RELEASE
from helm_rdma.helmenv import HelmEnv

if TYPE_CHECKING:
    from helm_rdma.resolve.values import ChartRequest


@main.command(examples=[
    ("what a longer context would change in the running release",
     "diff llama405b --preset h100 -n llm --max-model-len 65536"),
    ("the same values file upgrade would get, with three lines of context (helm diff's flags after --)",
     "diff llama405b --preset h100 -n llm -f values.yaml -- --context 3"),
])
@click.argument("release", type=UPGRADE_RELEASE)
@_chart_options
@_namespace_option
@_provision_options
@_helm_args
def diff(request: ChartRequest, namespace: str | None, helm_args: tuple[str, ...]) -> None:
    """Show what an upgrade of RELEASE would change (helm-diff).

    The chart is generated exactly as `upgrade` with the same options would generate it, and `helm diff upgrade`
    compares it with what is installed; nothing changes in the cluster. Needs the helm-diff plugin
    (https://github.com/databus23/helm-diff): without it, the message says how to install it. Arguments after --
    go to helm diff (--context N, --suppress-secrets, --color, ...), except those that would change the values, the
    manifests or the cluster or namespace (the --set family, -f, --reuse-values, -n, --kube-context, ...): those are
    refused (exit 2), as upgrade refuses them.
    """
    from helm_rdma.commands.diff import diff as run

    result = run(request, env=HelmEnv.from_environ(namespace=namespace), helm_args=helm_args)
    _notice(result.notice)
    sys.stdout.write(result.output)
