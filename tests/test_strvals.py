"""The --set family and -f files build exactly the values helm builds: a table of expressions, each rendered by the
real helm 3.17.2 and 4.1.4 (a tiny chart whose only template is `{{ toJson .Values }}`) and compared with ours."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helm_rdma.datafiles import chart_dir
from helm_rdma.errors import SetSyntaxError, YamlFileError
from helm_rdma.resolve.overrides import coalesce
from helm_rdma.resolve.strvals import Parser, StrvalsError, typed_value
from helm_rdma.resolve.valuesources import ValueSources, user_values

from .conftest import HELM_VERSIONS, helm_path

# The tiny chart's own values: what --set ...=null may remove, with nulls of its own as the values schema has
# (rdma.privileged, placement.clusterNetworkLabel.enabled: "decide from other keys").
CHART_VALUES = {"a": {"b": 1, "c": 2, "nothing": None}, "keep": "x", "list": [1, 2], "nested": {"deep": {"x": 1}},
                "unset": None}
FLAGS = {"-f": "files", "--set": "set", "--set-string": "set_string", "--set-json": "set_json",
         "--set-file": "set_file", "--set-literal": "set_literal"}


def by_flag(cases: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    """Cases of one flag with one argument, written by flag: each case's command-line arguments, by its name."""
    return {name: [flag, argument] for flag, named in cases.items() for name, argument in named.items()}


CASES: dict[str, list[str]] = {
    **by_flag({
        "--set": {
            "decimals stay strings": "image.tag=1.10,x=1.0,y=.5",
            "yaml 1.1 words stay strings": "team=no,b=yes,c=on,d=off,e=~",
            "leading zeros and exponents stay strings": "v=007,w=1e3,z=00,h=0x1f",
            "integers, signs and zero": "a0=0,a1=-0,a2=+5,a3=-12,a4=9223372036854775807,a5=9223372036854775808",
            "true false null in any case": "t=TRUE,f=False,n=NuLL,s=nil",
            "null removes a default": "a.b=null,keep=null",
            "null removes a whole map": "nested=null",
            "null on a key the chart lacks stays null": "new=null,a.z=null",
            "lists in braces are typed item by item": "l={1,true,x,1.5},e={},one={a}",
            "escapes in keys and values": r"sel.node\.kubernetes\.io/x=y,h==a\,b,p=C:\\x\y",
            "several assignments and an empty value": "a.c=3,s=,t=x",
            "list indexes fill with null": "l[2]=x,m[0].k=v,m[1].k=w,n[0][1]=z",
            "a list replaces the chart's list": "list[1]=9",
            "an empty key is ignored": "=1,k=v",
            "null removes a top-level default that is null": "unset=null",
            "a key under a default that is null": "unset.k=1,a.nothing.k=1",
        },
        "--set-string": {"--set-string never types": "s=null,i=1,b=true,l={1,2}"},
        "--set-json": {
            "--set-json values": 'j=[1,2.5,null,{"k":"v"}],o={"a":{"b":null}},e=,s="x"',
            "--set-json null removes a default": "a.b=null",
            "--set-json a map with a null over a default that is null": 'a.nothing={"k":null}',
        },
        "--set-literal": {"--set-literal keeps commas and equals": "lit=a,b=c\\d"},
    }),
    "helm's order: -f, --set-json, --set, --set-string, --set-file, --set-literal":
        ["--set-literal", "o5=literal", "--set-string", "o3=string,o4=string,o5=string", "--set", "o2=set,o3=set,o4=set",
         "--set-json", 'o1="json",o2="json"', "-f", "FILE:o1: file\no2: file\n", "--set-file", "o4=TEXT:file text"],
    "-f files merge in order, a null removes a default": ["-f", "FILE:a:\n  c: 5\nlist: [3]\n", "-f",
                                                          "FILE:a:\n  b: null\nx: {y: 1}\n"],
    "-f types plain scalars as helm's YAML library does":
        ["-f", "FILE:t: 1.10\nn: no\no: 007\nd: 2024-01-01\ne: =\nf: 2.0\ng: 1e3\nh: 0o17\ni: '08'\nj: 08\n"
               "k: 1:30\nl: +.5\nm: 1_000\nyy: y\ny: key\nbig: 9223372036854775808\nhuge: 1e400\n"],
    "-f anchors and aliases": ["-f", "FILE:base: &b {x: 1, y: [1, 2]}\ncopy: *b\nmerged:\n  <<: *b\n  x: 2\n"],
    "--set-file reads the text": ["--set-file", "cloud=TEXT:#cloud-config\nruncmd: [a, b]\n"],
    "--set into a map a file gave": ["-f", "FILE:m: {a: 1}\n", "--set", "m.b=2"],
    "-f nulls: below the top on keys the chart lacks, at the top over a null and over a value":
        ["-f", "FILE:a:\n  new: null\n  n: null\nunset: null\nkeep: null\n"],  # `n` is the key "false" to helm
}
# A null over a default that is itself null, below the top level: helm 4 keeps the key (null), helm 3.17 removes it
# (helm v4.1.4 pkg/chart/common/util/coalesce.go coalesceTablesFullKey deletes a user null only where the chart's
# value was not null, `srcOriginalNonNil`; v3.17.2 pkg/chartutil/coalesce.go coalesceTablesFullKey deletes it
# always). We build helm 4's values; the chart reads a null and a missing key alike, so both render the same.
HELM3_DROPS_THE_KEY: dict[str, list[str]] = {
    "--set null over a nested default that is null": ["--set", "a.nothing=null"],
    "-f null over a nested default that is null": ["-f", "FILE:a:\n  nothing: null\n"],
}
HELM4_ONLY: dict[str, list[str]] = {
    "--set-json with a whole object": ["--set-json", '{"a": {"c": null}, "o": [1]}'],
    "-f with several documents": ["-f", "FILE:a:\n  c: 7\n---\nx: 1\n"],
}
ERRORS: dict[str, list[str]] = by_flag({  # what helm refuses
    "--set": {
        "a key without a value": "a.b",
        "a key ending with a comma": "a=1,b",
        "an unclosed list": "a={x,y",
        "an index that is not a number": "a[x]=1",
        "a negative index": "a[-1]=1",
        "an index above 65536": "a[65537]=1",
        "a map where a string is": "a=1,a.b=2",
        "a list where a map is": "list=null,a[0]=1,a.b=2",
        "names nested 31 levels deep": ".".join(f"k{i}" for i in range(32)) + "=1",
        "an unclosed index": "a[1",
        "a key into a null set earlier": "a=null,a.b=2",
    },
    "--set-json": {
        "invalid JSON": "a={x}",
        "JSON NaN": "a=NaN",
    },
})


def sources_for(args: list[str], tmp_path: Path) -> tuple[ValueSources, list[str]]:
    """Our ValueSources and helm's command-line flags for one case (FILE: and TEXT: become files)."""
    fields: dict[str, list[Any]] = {f: [] for f in FLAGS.values()}
    helm_args = []
    for i in range(0, len(args), 2):
        flag, value = args[i], args[i + 1]
        if value.startswith("FILE:"):
            path = tmp_path / f"values{i}.yaml"
            path.write_text(value[5:])
            value = str(path)
        elif "=TEXT:" in value:
            key, text = value.split("=TEXT:", 1)
            path = tmp_path / f"text{i}.txt"
            path.write_text(text)
            value = f"{key}={path}"
        fields[FLAGS[flag]].append(Path(value) if flag == "-f" else value)
        helm_args += [flag, value]
    return ValueSources(**{k: tuple(v) for k, v in fields.items()}), helm_args


@pytest.fixture(scope="module")
def tiny_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chart = tmp_path_factory.mktemp("tiny")
    (chart / "templates").mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(json.dumps(CHART_VALUES))
    (chart / "templates" / "values.yaml").write_text("{{ toJson .Values }}\n")
    return chart


def helm_values(helm: str, chart: Path, args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_path(helm)), "template", "t", str(chart), *args], capture_output=True, text=True,
                          input=stdin, timeout=60)


def as_json(text: str) -> Any:
    """JSON with helm's numbers: an integer beyond 2**53 is the float64 Go printed (9223372036854776000)."""
    return json.loads(text, parse_int=lambda t: float(t) if abs(int(t)) > 2**53 else int(t))


def ours(args: list[str], tmp_path: Path, stdin: bytes = b"") -> Any:
    sources, _ = sources_for(args, tmp_path)
    user = user_values(sources, stdin=io.BytesIO(stdin))
    return as_json(json.dumps(coalesce(CHART_VALUES, user.values)))


def rendered(out: subprocess.CompletedProcess[str]) -> Any:
    assert out.returncode == 0, out.stderr
    return as_json(out.stdout.split("\n", 2)[2])


@pytest.mark.parametrize("helm", sorted(HELM_VERSIONS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_values_are_the_same_as_helms(name: str, helm: str, tiny_chart: Path, tmp_path: Path) -> None:
    _, helm_args = sources_for(CASES[name], tmp_path)
    assert ours(CASES[name], tmp_path) == rendered(helm_values(helm, tiny_chart, helm_args))


@pytest.mark.parametrize("name", sorted(HELM4_ONLY))
def test_values_are_the_same_as_helm_4s(name: str, tiny_chart: Path, tmp_path: Path) -> None:
    _, helm_args = sources_for(HELM4_ONLY[name], tmp_path)
    assert ours(HELM4_ONLY[name], tmp_path) == rendered(helm_values("helm4", tiny_chart, helm_args))


@pytest.mark.parametrize("name", sorted(HELM3_DROPS_THE_KEY))
def test_a_null_over_a_nested_null_default_is_kept_as_helm_4_keeps_it(name: str, tiny_chart: Path,
                                                                      tmp_path: Path) -> None:
    _, helm_args = sources_for(HELM3_DROPS_THE_KEY[name], tmp_path)
    values = ours(HELM3_DROPS_THE_KEY[name], tmp_path)
    assert values["a"]["nothing"] is None
    assert values == rendered(helm_values("helm4", tiny_chart, helm_args))
    del values["a"]["nothing"]
    assert values == rendered(helm_values("helm3", tiny_chart, helm_args))


@pytest.mark.parametrize("helm", sorted(HELM_VERSIONS))
def test_the_chart_renders_a_nulled_null_default_as_the_default(helm: str) -> None:
    """Why keeping helm 4's null is safe on helm 3 too: every template reads the null and the missing key alike. Only
    the two verbatim copies of the values (values.json, read back with dict.get) show the difference."""
    nulls = "rdma.privileged=null,placement.clusterNetworkLabel.enabled=null"
    plain, nulled = (subprocess.run([str(helm_path(helm)), "template", "x", str(chart_dir()), *flags],
                                    capture_output=True, text=True, timeout=60) for flags in ([], ["--set", nulls]))
    assert plain.returncode == 0 and nulled.returncode == 0, plain.stderr + nulled.stderr

    def objects(out: subprocess.CompletedProcess[str]) -> list[str]:
        return [line for line in out.stdout.splitlines() if not line.startswith("  values.json: ")]

    assert objects(nulled) == objects(plain)
    assert (nulled.stdout == plain.stdout) == (helm == "helm4")


def test_a_key_into_a_null_a_file_gave_is_refused_like_helm(tiny_chart: Path, tmp_path: Path) -> None:
    args = ["-f", "FILE:a: null\n", "--set", "a.b=2"]
    _, helm_args = sources_for(args, tmp_path)
    for helm in HELM_VERSIONS:
        out = helm_values(helm, tiny_chart, helm_args)
        assert out.returncode != 0 and "interface {} is nil" in out.stderr
    with pytest.raises(SetSyntaxError, match=r'--set "a.b=2": "a" is null in earlier values'):
        ours(args, tmp_path)


@pytest.mark.parametrize("helm", sorted(HELM_VERSIONS))
def test_standard_input_is_read_once_like_helm(helm: str, tiny_chart: Path, tmp_path: Path) -> None:
    args = ["-f", "-", "--set-file", "again=-"]
    text = "from: stdin\nlist: [7]\n"
    assert ours(args, tmp_path, stdin=text.encode()) == rendered(helm_values(helm, tiny_chart, args, stdin=text))


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_what_helm_refuses_we_refuse(name: str, tiny_chart: Path, tmp_path: Path) -> None:
    _, helm_args = sources_for(ERRORS[name], tmp_path)
    assert helm_values("helm3", tiny_chart, helm_args).returncode != 0
    with pytest.raises(SetSyntaxError):
        ours(ERRORS[name], tmp_path)


def test_an_index_above_the_limit_is_refused_before_anything_is_allocated() -> None:
    data: dict[str, Any] = {}
    with pytest.raises(StrvalsError, match="above helm's limit of 65536"):
        Parser("vllm.extraArgs[3000000]=x", data).parse()
    assert data == {}


@pytest.mark.parametrize(("raw", "typed"), [("1.10", "1.10"), ("no", "no"), ("007", "007"), ("1e3", "1e3"),
                                            ("0", 0), ("12", 12), ("-3", -3), ("fal\u017fe", False), ("", "")])
def test_typed_value_follows_helm(raw: str, typed: Any) -> None:
    assert typed_value(raw) == typed and type(typed_value(raw)) is type(typed)


def test_a_set_error_names_the_flag_and_the_argument() -> None:
    with pytest.raises(SetSyntaxError, match=r'--set-json "a=\{x\}": invalid JSON'):
        user_values(ValueSources(set_json=("a={x}",)))


def test_origins_name_the_flag_of_each_key(tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text("vllm:\n  maxModelLen: 10\n")
    user = user_values(ValueSources(files=(f,), set=("vllm.port=1",), set_json=('vllm.extraArgs=["a"]',)))
    assert user.origins == {"vllm.maxModelLen": f"-f {f}", "vllm.port": "--set vllm.port=1",
                            "vllm.extraArgs": '--set-json vllm.extraArgs=["a"]'}


def test_a_missing_set_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SetSyntaxError, match="--set-file .*nope.txt: no such file"):
        user_values(ValueSources(set_file=(f"k={tmp_path / 'nope.txt'}",)))


def test_a_values_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "list.yaml"
    f.write_text("- a\n")
    with pytest.raises(YamlFileError, match="expected a mapping of values, got a list"):
        user_values(ValueSources(files=(f,)))


def test_without_standard_input_only_dash_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", None)
    assert user_values(ValueSources(set=("a=1",))).values == {"a": 1}
    with pytest.raises(YamlFileError, match=r"standard input \(-f -\): there is no standard input to read"):
        user_values(ValueSources(files=(Path("-"),)))
