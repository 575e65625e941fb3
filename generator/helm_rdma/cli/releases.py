"""Commands that act on a release in a cluster: install, upgrade, status, uninstall, verify."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..helmenv import HelmEnv
from ..valuesources import ValueSources
from .base import ANY_RELEASE, CHART_RELEASE, _chart_options, _helm_args, _namespace_option, _notice, main

AUTH_VALUES = {"api_key": "apiKey", "instance_principal": "instancePrincipal", "workload_identity": "workloadIdentity"}


def _deploy_command(upgrade: bool) -> Any:
    verb = "upgrade" if upgrade else "install"
    doc = (
        "Upgrade RELEASE, or install it if it is absent (helm upgrade --install)."
        if upgrade else
        "Install RELEASE: generate its chart and run helm install (fails if the release exists, like helm)."
    ) + (
        " The chart is kept under $HELM_CACHE_HOME/rdma/NAMESPACE/RELEASE. --dry-run renders the manifests and needs"
        " no cluster. Arguments after -- go to helm."
    )

    @click.argument("release", type=CHART_RELEASE)
    @_chart_options
    @_namespace_option
    @click.option("--wait", is_flag=True, help="Wait until the pods are ready (helm --wait).")
    @click.option("--timeout", default=None, metavar="DURATION",
                  help="helm --timeout (default 60m: a large model takes long to load).")
    @click.option("--dry-run", is_flag=True, help="Render the manifests instead, with no cluster.")
    @click.option("--atomic", "--rollback-on-failure", "atomic", is_flag=True,
                  help="Roll back on failure (helm 3 --atomic, helm 4 --rollback-on-failure).")
    @click.option("--provision", is_flag=True,
                  help="Provision the OCI cluster network in the chart's pre-install hook (with the flags below).")
    @click.option("--compartment", help="Compartment OCID (with --provision).")
    @click.option("--availability-domain", help="Availability domain (with --provision).")
    @click.option("--subnet", help="Subnet OCID of the nodes (with --provision).")
    @click.option("--image", help="Image OCID of the nodes (with --provision).")
    @click.option("--auth", type=click.Choice(sorted(AUTH_VALUES)), default=None,
                  help="How the hook signs in to OCI (default workload_identity).")
    @click.option("--oci-api-key-secret", help="Secret with the OCI config and key, for --auth api_key.")
    @click.option("--oci-endpoint", envvar="HELM_RDMA_OCI_ENDPOINT", default=None, help="Compute Management endpoint.")
    @_helm_args
    def command(release: str, preset: str, model: str | None, nodes: int | None, max_model_len: int | None,
                sources: ValueSources, namespace: str | None, wait: bool,
                timeout: str | None, dry_run: bool, atomic: bool, provision: bool, compartment: str | None,
                availability_domain: str | None, subnet: str | None, image: str | None, auth: str | None,
                oci_api_key_secret: str | None, oci_endpoint: str | None, helm_args: tuple[str, ...]) -> None:
        from ..commands.deploy import deploy

        network = {key: value for key, value in (
            ("provision", provision or None), ("compartmentId", compartment),
            ("availabilityDomain", availability_domain), ("subnetId", subnet), ("imageId", image),
            ("auth", AUTH_VALUES.get(auth or "")), ("apiKeySecret", oci_api_key_secret), ("endpoint", oci_endpoint),
        ) if value is not None}
        result = deploy(upgrade=upgrade, release=release, preset=preset, model=model, nodes=nodes,
                        max_model_len=max_model_len, sources=sources,
                        env=HelmEnv.from_environ(namespace=namespace), wait=wait, timeout=timeout,
                        dry_run=dry_run, atomic=atomic, cluster_network=network or None, helm_args=helm_args)
        _notice(result.notice)
        sys.stdout.write(result.output)
        if result.chart is not None:
            click.echo(f"helm-rdma: chart kept in {result.chart}", err=True)

    command.__doc__ = doc
    return main.command(verb)(command)


install = _deploy_command(upgrade=False)
upgrade = _deploy_command(upgrade=True)


@main.command()
@click.argument("release", type=ANY_RELEASE)
@_namespace_option
def status(release: str, namespace: str | None) -> None:
    """helm's status of RELEASE, how many pods of each group are ready, and where its chart is kept."""
    from ..commands.status import status as run

    result = run(release=release, env=HelmEnv.from_environ(namespace=namespace))
    sys.stdout.write(result.helm_status)
    click.echo(f"\nGROUPS (namespace {result.namespace}):")
    if not result.groups:
        click.echo("  no pods of this release")
    for g in result.groups:
        leader = "ready" if g.leader_ready else "not ready"
        click.echo(f"  group {g.group}: {g.ready}/{g.total} pods ready, leader {leader}")
    click.echo(f"CHART: {result.chart}" if result.chart else "CHART: not kept here (installed by another tool)")


@main.command()
@click.argument("release", type=ANY_RELEASE)
@_namespace_option
@_helm_args
def uninstall(release: str, namespace: str | None, helm_args: tuple[str, ...]) -> None:
    """Uninstall RELEASE with helm and drop its kept chart; arguments after -- go to helm."""
    from ..commands.uninstall import uninstall as run

    result = run(release=release, env=HelmEnv.from_environ(namespace=namespace), helm_args=helm_args)
    sys.stdout.write(result.output)


@main.command()
@click.argument("release", type=ANY_RELEASE)
@_namespace_option
@click.option("--timeout", default="15m", show_default=True, help="helm test --timeout.")
@click.option("--nccl", is_flag=True, help="Re-run the bandwidth test first (it needs the GPUs: asks before).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before --nccl stops the serving pods.")
def verify(release: str, namespace: str | None, timeout: str, nccl: bool, yes: bool) -> None:
    """Prove RELEASE's fabric: helm test (RDMA NICs ACTIVE on every node, the API answers) and the preflight's
    all-reduce bandwidth against the preset's expectation. Exit 1 on any failure."""
    from ..commands.verify import verify as run

    def confirm(warning: str) -> bool:
        click.echo(f"helm-rdma: {warning}", err=True)
        return yes or click.confirm("Stop the serving pods and run the bandwidth test?", default=False, err=True)

    result = run(release=release, env=HelmEnv.from_environ(namespace=namespace), timeout=timeout,
                 rerun_bandwidth=confirm if nccl else None)
    marks = {True: "PASS", False: "FAIL", None: "    "}
    for check in result.checks:
        click.echo(f"{marks[check.passed]}  {check.name:<10} {check.detail}")
    if not result.passed:
        sys.exit(1)
