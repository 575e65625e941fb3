from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from helm_rdma.datafiles import presets_dir
from helm_rdma.errors import SchemaViolation, UnknownPresetError, YamlFileError
from helm_rdma.sizing.presets import load_preset, preset_from_file, preset_names

# From FACTS.md (oci-hpc-oke recommended NCCL parameters by shape).
HCAS = {
    "h100": "=mlx5_0,mlx5_1,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7,mlx5_8,mlx5_9,mlx5_10,mlx5_12,mlx5_13,mlx5_14,mlx5_15,mlx5_16,mlx5_17",
    "a100-v2": "=mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7,mlx5_8,mlx5_14,mlx5_15,mlx5_16,mlx5_17,mlx5_9,mlx5_10,mlx5_11,mlx5_12",
    "gpu4": "=mlx5_0,mlx5_2,mlx5_6,mlx5_8,mlx5_10,mlx5_12,mlx5_14,mlx5_16,mlx5_1,mlx5_3,mlx5_7,mlx5_9,mlx5_11,mlx5_13,mlx5_15,mlx5_17",
    "h200": "=mlx5_0,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_9,mlx5_10,mlx5_11",
    "b200": "=mlx5_0,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_9,mlx5_10,mlx5_11",
    "mi300x": "=mlx5_0,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_7,mlx5_8,mlx5_9",
}
FRONT_END = {"h100": {"mlx5_2", "mlx5_11"}, "a100-v2": {"mlx5_0", "mlx5_13"}, "gpu4": {"mlx5_4", "mlx5_5"},
             "h200": {"mlx5_1", "mlx5_2", "mlx5_7", "mlx5_8"}, "b200": {"mlx5_1", "mlx5_2", "mlx5_7", "mlx5_8"},
             "mi300x": {"mlx5_1", "mlx5_6"}}
COMMON = {"NCCL_IB_GID_INDEX": "3", "NCCL_IB_TC": "41", "NCCL_IB_SL": "0", "NCCL_IB_TIMEOUT": "22",
          "NCCL_IB_SPLIT_DATA_ON_QPS": "0"}
EXTRA = {
    "h100": {"NCCL_CUMEM_ENABLE": "0", "NCCL_IGNORE_CPU_AFFINITY": "1", "NCCL_IB_QPS_PER_CONNECTION": "1"},
    "h200": {"NCCL_CUMEM_ENABLE": "0", "NCCL_IGNORE_CPU_AFFINITY": "1", "NCCL_IB_QPS_PER_CONNECTION": "1"},
    "b200": {"NCCL_CUMEM_ENABLE": "0", "NCCL_IGNORE_CPU_AFFINITY": "1", "NCCL_IB_QPS_PER_CONNECTION": "1"},
    "gpu4": {"NCCL_IB_QPS_PER_CONNECTION": "4", "NCCL_IGNORE_CPU_AFFINITY": "1"},
    "a100-v2": {"NCCL_IB_QPS_PER_CONNECTION": "4", "NCCL_IGNORE_CPU_AFFINITY": "1"},
    "mi300x": {"NCCL_CUMEM_ENABLE": "0", "NCCL_IB_QPS_PER_CONNECTION": "1", "NCCL_PXN_DISABLE": "0",
               "NCCL_NET_PLUGIN": "none"},
}
LINE_RATE_GBPS = {"h100": 3200, "a100-v2": 1600, "gpu4": 1600, "h200": 3200, "b200": 3200, "mi300x": 3200}
THRESHOLD = {"h100": 440, "gpu4": 185, "mi300x": 350, "h200": 440, "b200": 440, "a100-v2": 185}
NOT_NCCL = {"NCCL_TIMEOUT", "NCCL_ASYNC_ERROR_HANDLING", "NCCL_BLOCKING_WAIT", "NCCL_SHM_USE_CUDA_MEMCPY"}


def test_every_shape_of_the_guide_and_the_newer_ones_has_a_preset() -> None:
    assert preset_names() == sorted(HCAS)


@pytest.mark.parametrize("name", sorted(HCAS))
def test_preset_matches_the_published_facts(name: str) -> None:
    preset = load_preset(name)
    assert "=" + ",".join(preset.hcas) == HCAS[name]
    assert not FRONT_END[name] & set(preset.hcas)
    assert set(preset.front_end_nics) == FRONT_END[name]
    assert preset.line_rate_gbps == LINE_RATE_GBPS[name]
    assert preset.bus_bandwidth.threshold_gbps == THRESHOLD[name]
    settings = {s.name: s.value for s in preset.nccl.settings}
    assert settings == {**COMMON, **EXTRA[name]}
    assert not NOT_NCCL & set(settings)
    assert preset.gpus_per_node == 8


@pytest.mark.parametrize("name", sorted(HCAS))
def test_every_nccl_value_cites_a_defined_source(name: str) -> None:
    preset = load_preset(name)
    # Oracle's published NCCL/RCCL recommendations for its shapes (FACTS.md: oci-hpc-oke's
    # docs/recommended-nccl-rccl-parameters-by-shape.md, oci-hpc's scripts): a public file, named.
    for setting in preset.nccl.settings:
        assert setting.source.startswith(("oracle-quickstart/oci-hpc-oke, docs/", "oracle-quickstart/oci-hpc, ")), \
            f"{name}: {setting.name} cites {setting.source!r}"


def test_amd_preset_uses_rccl_conf_and_amd_gpus() -> None:
    preset = load_preset("mi300x")
    assert preset.nccl.config_file == "/etc/rccl.conf"
    assert preset.gpu.resource == "amd.com/gpu"
    assert preset.pod.shm_size == "128Gi"


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(UnknownPresetError, match='unknown preset "h1000"; known: a100-v2, b200, gpu4, h100, h200, mi300x'):
        load_preset("h1000")


def _copy(tmp_path: Path, edit: dict) -> Path:
    data = yaml.safe_load((presets_dir() / "h100.yaml").read_text())
    data.update(edit)
    path = tmp_path / "h100.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_key_in_a_preset_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = _copy(tmp_path, {"ncclTimeout": 5})
    with pytest.raises(SchemaViolation, match=r"h100.yaml.*\n.*ncclTimeout: unknown key \"ncclTimeout\""):
        preset_from_file(path)


def test_a_setting_citing_an_undefined_source_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load((presets_dir() / "h100.yaml").read_text())
    data["nccl"]["settings"]["NCCL_IB_TC"]["source"] = "a-blog"
    path = tmp_path / "h100.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SchemaViolation, match=r'nccl.settings.NCCL_IB_TC.source: "a-blog" is not a key of sources'):
        preset_from_file(path)


def test_a_preset_must_not_carry_its_own_hca_variable(tmp_path: Path) -> None:
    data = yaml.safe_load((presets_dir() / "h100.yaml").read_text())
    data["nccl"]["settings"]["NCCL_IB_HCA"] = {"value": "mlx5", "source": "oke-nccl"}
    path = tmp_path / "h100.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SchemaViolation, match="list the devices under rdma.hcas"):
        preset_from_file(path)


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "h100.yaml"
    shutil.copy(presets_dir() / "h100.yaml", path)
    path.write_text(path.read_text() + "gpu: [unclosed\n")
    with pytest.raises(YamlFileError, match=r"h100.yaml:\d+: invalid YAML"):
        preset_from_file(path)
