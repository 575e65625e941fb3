"""`helm-rdma doctor`: check values before anything is applied and, with --cluster, the live cluster too; the same
cluster checks `install` and `upgrade` run before helm; and the values checks of `generate`, `diff`, `install` and
`upgrade`: doctor's own (checks/doctor.py) and the chart's rules, which helm's render of the chart applies
(templates/_rules.tpl) and which each command reads from the render it runs anyway."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from helm_rdma.chart.write import write_chart
from helm_rdma.checks.doctor import chart_findings, in_order, value_findings, with_chart
from helm_rdma.checks.finding import Finding
from helm_rdma.cluster.check import ClusterReport, check_cluster
from helm_rdma.cluster.kube import Connection, connect
from helm_rdma.cluster.needs import ClusterNeeds, cluster_needs, parse_manifests
from helm_rdma.commands.groupports import group_port_checks
from helm_rdma.errors import (
    ChartValuesError,
    ContextTooLongError,
    HelmCommandError,
    HelmNotFoundError,
    InputError,
    ModelTooLargeError,
    ParallelismError,
    SchemaViolation,
    TooFewNodesError,
    ValuesCheckError,
)
from helm_rdma.helm import HelmResult, find_helm, run_chart_command
from helm_rdma.helmenv import HelmEnv
from helm_rdma.oci.clients import OciAuth
from helm_rdma.resolve.values import ChartRequest, Resolved, check_values, generated_api_key_secret, resolve


@dataclass(frozen=True)
class DoctorResult:
    """Every finding about the values, errors first, and with --cluster the cluster's checks (or why they did not
    run)."""

    findings: tuple[Finding, ...]
    cluster: ClusterReport | None = None
    cluster_note: str | None = None  # why the cluster was not checked

    @property
    def errors(self) -> int:
        found = sum(1 for f in self.findings if f.severity == "error")
        return found + (self.cluster.errors if self.cluster else 0)

    @property
    def warnings(self) -> int:
        found = sum(1 for f in self.findings if f.severity == "warning")
        return found + (self.cluster.warnings if self.cluster else 0)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of `doctor -o json`: values findings, the cluster's checks (null without --cluster), a summary."""
        cluster = self.cluster.to_dict() if self.cluster else None
        if cluster is None and self.cluster_note:
            cluster = {"checks": [], "note": self.cluster_note}
        return {"values": [f.to_dict() for f in self.findings], "cluster": cluster,
                "summary": {"errors": self.errors, "warnings": self.warnings, "passed": self.errors == 0}}


def doctor(request: ChartRequest, *, cluster: HelmEnv | None = None, oci: OciAuth | None = None) -> DoctorResult:
    """Resolve the values as install would and report what is wrong or doubtful, instead of stopping at the first
    problem. Unknown presets, models, unreadable files and bad --set syntax still raise (exit 2).

    With ``cluster`` (the kube context and namespace), also check that cluster for the release (see
    cluster.check.check_cluster): the chart is rendered as install would render it, and the checks read the names
    they need from the rendered objects. Under hostNetwork with more than one node, with ``oci`` (how to sign in to
    OCI), the OCI ingress rules that reach the GPU nodes are read too (commands/groupports.py): a rule that admits
    the group's ports from outside the nodes' own NSGs is an error.

    Raises:
        ClusterError: ``cluster`` is given and its API server does not answer (names the context and server).
        OciConfigError: With ``oci``, its config names no such profile or its key cannot be read.
    """
    try:
        resolved = resolve(request, validate=False)
    except (TooFewNodesError, ModelTooLargeError, ContextTooLongError, ParallelismError) as exc:
        return DoctorResult(findings=(Finding("error", "nodes", str(exc), "see the message"),),
                            cluster_note="not checked: the values have errors" if cluster else None)
    except SchemaViolation as exc:  # values the planner cannot read (a key removed or of another kind)
        return _schema_findings(exc, cluster=cluster is not None)
    connection = connect(cluster) if cluster else None
    try:
        check_values(resolved)
    except SchemaViolation as exc:
        return _schema_findings(exc, cluster=connection is not None)
    own = value_findings(resolved)
    if connection is None:
        return DoctorResult(findings=tuple(with_chart_verdict(own, resolved)))
    try:
        with tempfile.TemporaryDirectory(prefix="helm-rdma-") as tmp:
            chart = write_chart(resolved, output=Path(tmp) / "chart", compact=True).path
            needs = rendered_needs(chart=chart, resolved=resolved, namespace=connection.namespace)
            report = cluster_report(chart=chart, resolved=resolved, connection=connection, needs=needs)
    except ChartValuesError as exc:  # the chart's rules: the render that checks the cluster gave their verdict
        return DoctorResult(findings=tuple(with_chart(own, chart_findings(exc.problems))),
                            cluster_note="not checked: the chart does not render")
    except InputError as exc:  # values the chart refuses that the checks above let through
        return DoctorResult(findings=(*own, Finding("error", "chart", f"does not render: {exc}", "see the "
                                                       "message")), cluster_note="not checked: the chart does "
                                                                                 "not render")
    if oci is not None:  # outside the chart's try: a bad --oci-profile is the user's (exit 2), not the chart's
        report = replace(report, checks=report.checks + tuple(group_port_checks(
            resolved.values, connection=connection, oci=oci, release=resolved.release,
            node_selector=dict(needs.node_selector))))
    return DoctorResult(findings=tuple(own), cluster=report)


# Said when no helm renders the chart: its rules were not applied.
UNCHECKED = ("helm was not found, so the chart was not rendered and its rules (templates/_rules.tpl) were not "
             "checked")
UNCHECKED_FIX = "install helm 3 or 4, or set HELM_BIN to it"


def chart_verdict(resolved: Resolved) -> list[Finding] | None:
    """The chart's rules that ``resolved``'s values break, as findings: one `helm template` of the chart, written
    to a temporary directory. None when no helm binary is found (the rules were not checked).

    Raises:
        SchemaViolation: helm failed and the values break the schema.
        HelmCommandError: helm failed for another reason than the chart's rules.
    """
    try:
        helm = find_helm()
    except HelmNotFoundError:
        return None
    with tempfile.TemporaryDirectory(prefix="helm-rdma-") as tmp:
        chart = write_chart(resolved, output=Path(tmp) / "chart", compact=True).path
        try:
            run_chart_command(["template", resolved.release, str(chart)], helm=helm,
                              explain=lambda: check_values(resolved))
        except ChartValuesError as exc:
            return chart_findings(exc.problems)
    return []


def with_chart_verdict(own: list[Finding], resolved: Resolved) -> list[Finding]:
    """doctor's own findings and the chart's verdict, or a warning that the chart's rules were not checked, or an
    error when helm fails on the chart for another reason."""
    try:
        chart = chart_verdict(resolved)
    except HelmCommandError as exc:
        return in_order([*own, Finding("error", "chart", f"does not render: {exc}", "see the message")])
    if chart is None:
        return in_order([*own, Finding("warning", "chart", UNCHECKED, UNCHECKED_FIX)])
    return with_chart(own, chart)


def require_clean(resolved: Resolved) -> list[Finding]:
    """The values checks before `generate`, `diff`, `install` and `upgrade` write or apply anything: doctor's own
    findings, whose warnings are returned. On an error, the chart's verdict is added (one `helm template`), so that
    every problem shows at once, as `doctor` lists them; otherwise the chart's rules are left to the render the
    command runs anyway (``render_checked``).

    Raises:
        ValuesCheckError: Any finding is an error.
    """
    own = value_findings(resolved)
    if any(f.severity == "error" for f in own):
        found = with_chart_verdict(own, resolved)
        raise ValuesCheckError(lines=[f.line() for f in found if f.severity == "error"])
    return own


def refusal(exc: ChartValuesError) -> ValuesCheckError:
    """The chart's refusal of the values as the error ``require_clean`` raises: the same lines as `doctor`."""
    return ValuesCheckError(lines=[f.line() for f in chart_findings(exc.problems)])


def render_checked(args: list[str], *, helm: str, resolved: Resolved) -> HelmResult:
    """``run_chart_command`` for a chart of ``resolved``'s values after ``require_clean``: a schema problem names
    its file or flag, and the chart's rules refuse the values in `doctor`'s words.

    Raises:
        ValuesCheckError: The chart's rules refuse the values.
        SchemaViolation: The values break the schema.
        HelmCommandError: helm failed otherwise.
    """
    try:
        return run_chart_command(args, helm=helm, explain=lambda: check_values(resolved))
    except ChartValuesError as exc:
        raise refusal(exc) from None


def _schema_findings(exc: SchemaViolation, *, cluster: bool) -> DoctorResult:
    findings = [Finding("error", p.split(":", 1)[0], p.split(":", 1)[1].strip(), "see values.schema.json")
                for p in exc.problems]
    return DoctorResult(findings=tuple(findings),
                        cluster_note="not checked: the values have errors" if cluster else None)


def rendered_needs(*, chart: Path, resolved: Resolved, namespace: str, helm: str | None = None) -> ClusterNeeds:
    """What the pods of ``chart``, rendered as helm installs it into ``namespace``, need of the cluster (their
    nodeSelector among it: the nodes they may run on).

    Raises:
        ChartValuesError, HelmCommandError: The chart does not render.
    """
    rendered = run_chart_command(["template", resolved.release, str(chart), "--namespace", namespace],
                                 helm=helm or find_helm(), explain=lambda: check_values(resolved))
    return cluster_needs(parse_manifests(rendered.stdout), release=resolved.release, namespace=namespace,
                         values=resolved.values)


def cluster_report(*, chart: Path, resolved: Resolved, connection: Connection, helm: str | None = None,
                   create_namespace: bool = False, needs: ClusterNeeds | None = None) -> ClusterReport:
    """Check the cluster for ``chart`` rendered into the connection's namespace (``needs``, when the caller
    rendered it already).

    Raises:
        ChartValuesError, HelmCommandError: The chart does not render.
        ClusterError: The API server stopped answering.
    """
    if needs is None:
        needs = rendered_needs(chart=chart, resolved=resolved, namespace=connection.namespace, helm=helm)
    created = generated_api_key_secret(resolved)
    return check_cluster(needs, connection=connection, create_namespace=create_namespace,
                         install_creates=frozenset({created} if created else ()))
