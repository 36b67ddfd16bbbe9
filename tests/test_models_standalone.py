"""Self-contained checkpoint folders (sinkprune.models.standalone): every pruned folder loads with
plain transformers and `trust_remote_code=True` where sinkprune is not importable, and gives
sinkprune's logits; the generated code honours and refuses the same config fields as the package;
sinkprune's own loader never runs it."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import textwrap

import numpy as np
import pytest
import torch
from test_model_config_fields import DREAM, DREAM_FIELDS, LLADA, LLADA_FIELDS, REFUSED, save_tiny
from transformers import AutoModel

from sinkprune.artifacts import ArtifactError
from sinkprune.calibration import write_samples
from sinkprune.models import DreamConfig, DreamModel, LLaDAConfig, LLaDAModelLM, load_model
from sinkprune.models.common import ModelConfigError
from sinkprune.models.standalone import SPECS, standalone_sources, write_standalone
from sinkprune.pruning.io import prune_checkpoint

torch.set_num_threads(1)
V, T, N = 40, 16, 3


def generated_module(family: str, tmp_path, which: str = "modeling"):
    """Import a generated file from disk, as transformers would, without sinkprune's help."""
    spec = SPECS[family]
    name = spec.modeling_file if which == "modeling" else spec.configuration_file
    path = tmp_path / f"gen_{family}_{which}" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(standalone_sources(family)[name])
    module_spec = importlib.util.spec_from_file_location(f"gen_{family}_{which}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------ the sources ---
@pytest.mark.parametrize("family", sorted(SPECS))
def test_generated_files_import_only_torch_transformers_and_the_stdlib(family):
    for name, text in standalone_sources(family).items():
        tree = ast.parse(text)
        roots = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}: relative import"
                roots.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                roots |= {a.name.split(".")[0] for a in node.names}
        assert roots - sys.stdlib_module_names <= {"torch", "transformers"}, name
        assert "[package only]" not in text and "auto_map" not in text
    # deterministic, so a rerun writes byte-identical checkpoint folders
    assert standalone_sources(family) == standalone_sources(family)


def test_auto_map_names_the_generated_classes(tmp_path):
    for family, spec in SPECS.items():
        modeling = generated_module(family, tmp_path)
        configuration = generated_module(family, tmp_path, "configuration")
        assert hasattr(modeling, spec.model_class) and hasattr(modeling, spec.config_class)
        assert hasattr(configuration, spec.config_class)
        for ref in spec.auto_map.values():
            file, cls = ref.split(".")
            assert f"{file}.py" in (spec.configuration_file, spec.modeling_file) and cls
        # the standalone config keeps auto_map (AutoModel finds the model class through it)
        cfg = configuration.__dict__[spec.config_class](auto_map=spec.auto_map)
        assert cfg.to_dict()["auto_map"] == spec.auto_map


# ------------------------------------------ same behaviour as the package ---
PACKAGE = {"llada": (LLaDAModelLM, LLaDAConfig, LLADA), "dream": (DreamModel, DreamConfig, DREAM)}


def compare(family: str, fields: dict, tmp_path) -> None:
    """Package model loaded by load_model vs the generated class on the same folder: equal
    logits and attention mass, in fp32 and bf16."""
    pkg_cls, cfg_cls, base = PACKAGE[family]
    save_tiny(pkg_cls, cfg_cls(**{**base, **fields}), tmp_path)
    gen = generated_module(family, tmp_path)
    spec = SPECS[family]
    ids = torch.randint(0, 60, (2, 12), generator=torch.Generator().manual_seed(3))
    for dtype in (torch.float32, torch.bfloat16):
        ours = load_model(tmp_path, dtype=dtype)
        theirs = getattr(gen, spec.model_class).from_pretrained(str(tmp_path), dtype=dtype).eval()
        assert type(theirs).__module__ == gen.__name__
        assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
        with torch.no_grad():
            a = ours(ids, output_attention_mass=True, mass_chunk=5)
            b = theirs(ids, output_attention_mass=True, mass_chunk=5)
        assert torch.equal(a.logits, b.logits), dtype
        assert torch.equal(a.attention_mass, b.attention_mass), dtype


@pytest.mark.parametrize("fields", list(LLADA_FIELDS.values()), ids=list(LLADA_FIELDS))
def test_generated_llada_honours_every_field_as_the_package(fields, tmp_path):
    compare("llada", fields, tmp_path)


@pytest.mark.parametrize("fields", list(DREAM_FIELDS.values()), ids=list(DREAM_FIELDS))
def test_generated_dream_honours_every_field_as_the_package(fields, tmp_path):
    compare("dream", fields, tmp_path)


@pytest.mark.parametrize(("family", "field", "value"), REFUSED)
def test_generated_code_refuses_what_the_package_refuses(family, field, value, tmp_path):
    pkg_cls, cfg_cls, base = PACKAGE[family]
    save_tiny(pkg_cls, cfg_cls(**base), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, field: value}))
    gen = generated_module(family, tmp_path)
    with pytest.raises(Exception) as package:
        load_model(tmp_path, verify=False)
    with pytest.raises(Exception) as standalone:
        getattr(gen, SPECS[family].model_class).from_pretrained(str(tmp_path))
    if isinstance(package.value, ModelConfigError) and package.value.__context__ is None:
        # refused by sinkprune's own check: the generated copy raises its own ModelConfigError
        assert type(standalone.value).__name__ == "ModelConfigError"
        assert str(standalone.value) == str(package.value)
    else:  # refused by transformers' config validation, the same in both
        assert type(standalone.value) is type(package.value.__context__ or package.value)


def test_generated_dream_refuses_a_tied_head_that_differs(tmp_path):
    save_tiny(DreamModel, DreamConfig(**DREAM), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "tie_word_embeddings": True}))
    gen = generated_module("dream", tmp_path)
    for load in (lambda: load_model(tmp_path), lambda: gen.DreamModel.from_pretrained(tmp_path)):
        with pytest.raises(Exception, match="tie_word_embeddings is set but lm_head.weight"):
            load()


# --------------------------------------------------- pruned folders, end to end ---
def base_model(family: str, root):
    """A tiny dense base checkpoint: llada MHA; dream GQA (4 heads in 2 KV groups, q/k/v biases)
    with a tied head."""
    torch.manual_seed(0)
    if family == "llada":
        cfg = LLaDAConfig(d_model=32, n_layers=2, n_heads=4, mlp_hidden_size=64, vocab_size=V,
                          max_sequence_length=T, mask_token_id=V - 1)  # fmt: skip
        model = LLaDAModelLM(cfg)
    else:
        cfg = DreamConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, vocab_size=V,
                          max_position_embeddings=T, mask_token_id=V - 1,
                          tie_word_embeddings=True)  # fmt: skip
        model = DreamModel(cfg)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_()
    path = root / f"base-{family}"
    model.save_pretrained(path)
    return path


VARIANTS = {
    "llada": ["dense", "wanda_unstructured_0.5", "wanda_sp_structured_0.5"],
    "dream": ["wanda_2of4_0.5", "wanda_sp_structured_0.5"],
}


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """{(family, variant): folder} written by prune_checkpoint, as the `prune` rule does."""
    root = tmp_path_factory.mktemp("standalone")
    windows = np.random.default_rng(0).integers(0, V - 1, (N, T)).astype(np.int32)
    write_samples(windows, root / "samples.parquet")
    out = {}
    for family, variants in VARIANTS.items():
        base = base_model(family, root)
        for variant in variants:
            folder = root / family / variant
            prune_checkpoint(base, root / "samples.parquet", folder, variant)
            out[family, variant] = folder
    return out


CLEAN_LOAD = """
import importlib.abc, importlib.util, sys
sys.path[:] = [p for p in sys.path if p] + [{site!r}]
assert importlib.util.find_spec("sinkprune") is None, "sinkprune is importable"

class NoSinkprune(importlib.abc.MetaPathFinder):  # and any attempt to import it is an error
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "sinkprune":
            raise ImportError("sinkprune must not be imported here")

sys.meta_path.insert(0, NoSinkprune())
import json, torch
from transformers import AutoModel

ids = torch.load({ids!r})
for folder in json.loads({folders!r}):
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules."), type(model)
    with torch.no_grad():
        torch.save(model(ids).logits, folder + ".standalone_logits.pt")
    print(folder, type(model).__name__, model.config.head_dim)
assert not [m for m in sys.modules if m.startswith("sinkprune")]
"""


def test_pruned_folders_load_with_plain_transformers_and_give_sinkprune_logits(pruned, tmp_path):
    ids = torch.randint(0, V - 1, (2, T), generator=torch.Generator().manual_seed(5))
    torch.save(ids, tmp_path / "ids.pt")
    folders = [str(f) for f in pruned.values()]
    script = CLEAN_LOAD.format(
        site=sysconfig.get_paths()["purelib"], ids=str(tmp_path / "ids.pt"),
        folders=json.dumps(folders),
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), PYTHONNOUSERSITE="1")
    # -S: no site-packages processing, so the editable install's path to src/ is never added
    proc = subprocess.run(
        [sys.executable, "-S", "-c", textwrap.dedent(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    for (family, variant), folder in pruned.items():
        with torch.no_grad():
            expected = load_model(folder)(ids).logits
        got = torch.load(str(folder) + ".standalone_logits.pt")
        assert torch.equal(got, expected), (family, variant)
        cfg = json.loads((folder / "config.json").read_text())
        if variant.startswith("wanda_sp"):  # heads removed: the head size is not d / n_heads
            heads = cfg.get("n_heads") or cfg["num_attention_heads"]
            width = cfg.get("d_model") or cfg["hidden_size"]
            assert heads == 2 and cfg["head_dim"] == 8 != width // heads, cfg
        assert cfg["auto_map"] == SPECS[family].auto_map


def test_generated_files_are_recorded_and_verified(pruned):
    folder = pruned["llada", "wanda_unstructured_0.5"]
    report = json.loads((folder / "prune_report.json").read_text())
    for name in ("configuration_llada.py", "modeling_llada.py", "config.json"):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert report["files"][name] == digest, name
    dream = json.loads(
        (pruned["dream", "wanda_sp_structured_0.5"] / "prune_report.json").read_text()
    )
    assert {"configuration_dream.py", "modeling_dream.py"} <= set(dream["files"])


def test_sinkprune_never_runs_checkpoint_code(pruned, tmp_path):
    """A folder whose modelling file would run arbitrary code: sinkprune's loader (and a plain
    AutoModel call with sinkprune imported) loads its own classes and never imports the file; a
    changed file is a verification error."""
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(pruned["llada", "wanda_unstructured_0.5"], folder)
    sentinel = tmp_path / "ran"
    (folder / "modeling_llada.py").write_text(f"open({str(sentinel)!r}, 'w').write('x')\n")
    with pytest.raises(ArtifactError, match="modeling_llada.py: sha256 differs"):
        load_model(folder)
    for model in (load_model(folder, verify=False), AutoModel.from_pretrained(folder)):
        assert type(model) is LLaDAModelLM
        assert not hasattr(model.config, "auto_map")
    assert not sentinel.exists()


def test_write_standalone_refuses_an_unknown_family(tmp_path):
    with pytest.raises(ValueError, match="family 'gpt'"):
        write_standalone(tmp_path, "gpt")


def test_tokenizer_loading_never_consults_auto_map(pruned, tmp_path):
    """sinkprune's tokenizer loaders on a folder with `auto_map`, in a fresh process where no
    family is registered yet: no remote-code prompt, the folder's code never runs."""
    import shutil

    from sinkprune.tokenizer import make_tokenizer

    folder = tmp_path / "copy"
    shutil.copytree(pruned["dream", "wanda_sp_structured_0.5"], folder)
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question\n" * 50)
    make_tokenizer(text, tmp_path / "tok", 300)
    for f in (tmp_path / "tok").iterdir():
        shutil.copy(f, folder / f.name)
    sentinel = tmp_path / "ran"
    for name in ("modeling_dream.py", "configuration_dream.py"):
        (folder / name).write_text(f"open({str(sentinel)!r}, 'w').write('x')\n")
    script = (
        "import sys\n"
        "from sinkprune.tokenizer import load_tokenizer\n"
        "from sinkprune.evaluation.lm import load_tokenizer as lm_tokenizer\n"
        f"print(len(load_tokenizer({str(folder)!r})), len(lm_tokenizer({str(folder)!r})))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run(
        [sys.executable, "-c", script], stdin=subprocess.DEVNULL, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "custom code" not in proc.stdout + proc.stderr
    sizes = proc.stdout.split()
    assert len(sizes) == 2 and sizes[0] == sizes[1] and int(sizes[0]) > 4
    assert not sentinel.exists()
