"""What ships: the Dockerfile (parsed by dockerfile_parser.py, since there is no Docker engine here; its CMD and
HEALTHCHECK run for real in tests/e2e/test_docker_cmd.py), the Spaces front matter in README.md, the examples, and
no tokens anywhere in the repository."""

from __future__ import annotations

import ast
import os
import re
import shlex
from pathlib import Path

import yaml
from dockerfile_parser import (
    DOCKERFILE,
    env_of,
    exec_form,
    expand_variables,
    healthcheck_command,
    key_values,
    only,
    parse_dockerfile,
)
from huggingface_hub import SpaceHardware
from PIL import Image

from svd_demo.files.examples import EXAMPLES_DIR, example_images, example_prompts

ROOT = Path(__file__).resolve().parents[2]
SVD_XT = "stabilityai/stable-video-diffusion-img2vid-xt"
SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
SPACES_COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
TOKEN_RE = re.compile(rb"hf_[A-Za-z0-9]{30,}")


def test_parser_joins_continuations_and_skips_comments():
    text = "FROM a:1\n# note\nENV A=1 \\\n    # inside\n    B=\"two words\" \\\n\n    C=${A}x\nRUN echo \\\n  hi\n"
    parsed = parse_dockerfile(text)
    assert parsed == [("FROM", "a:1"), ("ENV", 'A=1 B="two words" C=${A}x'), ("RUN", "echo hi")]
    assert env_of(parsed) == {"A": "1", "B": "two words", "C": "1x"}
    assert env_of(parse_dockerfile("FROM a\nENV LEGACY some value\n")) == {"LEGACY": "some value"}


def _pin(package: str) -> str:
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(package)}==([\w.]+)\s*$", text, flags=re.M | re.I)
    assert match, f"requirements.txt does not pin {package}==X"
    return match.group(1)


def test_base_image_is_official_pytorch_cuda_runtime_with_the_pinned_torch(dockerfile):
    args: dict[str, str] = {}
    for keyword, value in dockerfile:
        if keyword == "FROM":
            break
        if keyword == "ARG":
            args.update(key_values(value, args))
    image = expand_variables(only(dockerfile, "FROM").split()[0], args)
    match = re.fullmatch(r"pytorch/pytorch:([\d.]+)-cuda[\d.]+-cudnn\d+-runtime", image)
    assert match, f"base image {image!r} is not an official pytorch/pytorch CUDA runtime tag"
    assert match.group(1) == _pin("torch"), "the base image's torch is not requirements.txt's: pip would reinstall it"


def test_runs_as_uid_1000_on_code_it_cannot_change(dockerfile):
    runs = " ".join(args for kw, args in dockerfile if kw == "RUN")
    assert re.search(r"useradd\b.*(--uid|-u)\s+1000\b", runs), "no user with uid 1000 is created"
    users = [(i, args) for i, (kw, args) in enumerate(dockerfile) if kw == "USER"]
    assert users and users[-1][1] in {"user", "1000", "user:user", "1000:1000"}
    cmd_index = next(i for i, (kw, _) in enumerate(dockerfile) if kw == "CMD")
    assert users[-1][0] < cmd_index
    # The code: copied as root (no --chown), outside the user's home, made read-only to others, before USER.
    assert only(dockerfile, "WORKDIR") == "/app"
    code = next(i for i, (kw, args) in enumerate(dockerfile) if kw == "COPY" and args.split()[-2:] == [".", "."])
    assert "--chown" not in dockerfile[code][1] and code < users[-1][0]
    assert any(kw == "RUN" and re.search(r"chmod -R \S*go=rX\S* /app", args) for kw, args in dockerfile[code:])
    assert "/app" not in next(args for kw, args in dockerfile if kw == "RUN" and "chown" in args)


def test_port_environment_and_cache_volume(dockerfile):
    assert only(dockerfile, "EXPOSE").split() == ["7860"]
    env = env_of(dockerfile)
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0"
    assert env["GRADIO_SERVER_PORT"] == "7860"
    assert env["HF_HOME"] == "/data/hf-cache"
    volume = only(dockerfile, "VOLUME")
    volumes = exec_form(volume) if volume.startswith("[") else volume.split()
    assert "/data" in volumes


def test_no_secrets_baked_in(dockerfile):
    for keyword, args in dockerfile:
        if keyword in {"ARG", "ENV"}:
            names = key_values(args, {}).keys()
            assert not [n for n in names if re.search(r"TOKEN|SECRET|PASSWORD|API_KEY", n, flags=re.I)], args
    assert not TOKEN_RE.search(DOCKERFILE.read_bytes())


def test_dependencies_install_before_the_code_is_copied(dockerfile):
    """A code change must not invalidate the pip layer: requirements.txt alone is copied and installed first."""
    copies = [(i, args) for i, (kw, args) in enumerate(dockerfile) if kw in {"COPY", "ADD"}]
    first_index, first = copies[0]
    assert [w for w in first.split() if not w.startswith("--")][0] == "requirements.txt"
    install = next(i for i, (kw, args) in enumerate(dockerfile)
                   if kw == "RUN" and re.search(r"pip install .*-r \S*requirements\.txt", args))
    code = next(i for i, args in copies if [w for w in args.split() if not w.startswith("--")] == [".", "."])
    assert first_index < install < code


def test_cmd_and_healthcheck_forms(dockerfile):
    assert exec_form(only(dockerfile, "CMD")) == ["python", "app.py"]
    check = healthcheck_command(dockerfile)
    assert check[:2] == ["python", "-c"] and "http://127.0.0.1:" in check[2]
    assert "curl" not in only(dockerfile, "HEALTHCHECK")


def test_dockerignore_keeps_local_state_out():
    entries = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for needed in (".git", "**/__pycache__", ".pytest_cache", ".ruff_cache", "tiny-models", "outputs"):
        assert needed in entries, f".dockerignore should list {needed}"
    assert not {"examples", "svd_demo", "app.py", "requirements.txt"} & entries


# --- no tokens in the repository ------------------------------------------------------------------------------------

SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", "tiny-models", "outputs",
             "node_modules", ".whl", ".gl"}


def test_no_file_contains_a_hugging_face_token():
    offenders = []
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS]
        for name in files:
            path = Path(directory, name)
            try:
                if path.is_symlink() or path.stat().st_size > 20_000_000:
                    continue
                if TOKEN_RE.search(path.read_bytes()):
                    offenders.append(str(path.relative_to(ROOT)))
            except OSError:
                continue
    assert not offenders, f"something that looks like a Hugging Face token is in: {offenders}"


# --- Spaces front matter in README.md -------------------------------------------------------------------------------

def front_matter(text: str) -> tuple[str, dict[str, object]]:
    match = re.match(r"---[ \t]*\n(.*?)\n---[ \t]*(\n|$)", text, flags=re.S)
    assert match, "README.md must start with a YAML front matter block (--- ... ---)"
    block = match.group(1)
    return block, yaml.safe_load(block)


def test_readme_has_spaces_front_matter():
    _, card = front_matter((ROOT / "README.md").read_text(encoding="utf-8"))
    for key in ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "python_version", "app_file",
                "suggested_hardware", "models", "short_description", "license"):
        assert key in card, f"front matter lacks {key}"
    assert card["sdk"] == "gradio"
    assert str(card["sdk_version"]) == _pin("gradio")
    assert isinstance(card["python_version"], str) and re.fullmatch(r"3\.\d+(\.\d+)?", card["python_version"]), \
        "python_version must be a quoted string such as \"3.11\" (unquoted 3.10 reads as 3.1)"
    assert card["app_file"] == "app.py" and (ROOT / "app.py").is_file()
    assert card["colorFrom"] in SPACES_COLORS and card["colorTo"] in SPACES_COLORS
    assert card["suggested_hardware"] in {h.value for h in SpaceHardware}
    assert isinstance(card["models"], list) and {SVD_XT, SDXL} <= set(card["models"])
    assert isinstance(card["short_description"], str) and 0 < len(card["short_description"]) <= 60
    assert isinstance(card["license"], str) and card["license"]


def test_spaces_preload_the_default_models_files_the_app_loads():
    """`preload_from_hub` makes a Space download at build time, not while its first visitor waits: the default
    models, limited to the files the app loads on a GPU (the fp16 variants, not every checkpoint in the repos),
    and the default upscaler's file."""
    from fake_hub import SDXL_FILES, SDXL_INDEX, SVD_XT_FILES, SVD_XT_INDEX

    from svd_demo.core.models import DEFAULT_SDXL_MODEL, DEFAULT_SVD_MODEL
    from svd_demo.core.settings import Settings
    from svd_demo.engine.hub import pipeline_files
    from svd_demo.engine.upscale import UPSCALER_PRESETS

    _, card = front_matter((ROOT / "README.md").read_text(encoding="utf-8"))
    entries = card["preload_from_hub"]
    assert isinstance(entries, list) and all(isinstance(e, str) and len(e.split()) == 2 for e in entries), \
        "each preload_from_hub entry is 'OWNER/REPO file1,file2,...'"
    preloaded = {repo: files.split(",") for repo, files in (e.split() for e in entries)}
    for repo, (listing, index) in ((DEFAULT_SVD_MODEL, (SVD_XT_FILES, SVD_XT_INDEX)),
                                   (DEFAULT_SDXL_MODEL, (SDXL_FILES, SDXL_INDEX))):
        assert repo in preloaded and repo in card["models"]
        assert sorted(preloaded[repo]) == sorted(pipeline_files(listing, index, "fp16")), repo
        assert all(name.endswith(".fp16.safetensors") for name in preloaded[repo] if ".safetensors" in name)
    upscaler = next(p for p in UPSCALER_PRESETS if p.name == Settings().upscale_model)
    assert preloaded[upscaler.repo_id] == [upscaler.filename]
    assert set(preloaded) == {DEFAULT_SVD_MODEL, DEFAULT_SDXL_MODEL, upscaler.repo_id}


# --- examples --------------------------------------------------------------------------------------------------------

def test_example_images_are_small_licensed_jpegs():
    images = example_images()
    assert len(images) >= 6 and images == sorted(images)
    listed = (EXAMPLES_DIR / "README.md").read_text(encoding="utf-8")
    portrait = 0
    for path in images:
        assert path.suffix == ".jpg" and path.stat().st_size < 300_000, path.name
        assert f"images/{path.name}" in listed, f"{path.name} has no source/licence row in examples/README.md"
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB" and max(image.size) <= 1024, path.name
            portrait += image.height > image.width
    assert portrait >= 1, "at least one portrait photo shows the native-aspect mode"


def test_example_prompts():
    prompts = example_prompts()
    assert 6 <= len(prompts) <= 8
    assert all(p == p.strip() and len(p) > 20 for p in prompts)
    assert len(set(prompts)) == len(prompts)


def test_examples_module_imports_neither_gradio_nor_torch():
    tree = ast.parse((ROOT / "svd_demo" / "files" / "examples.py").read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"gradio", "torch", "diffusers", "skimage"}


def test_the_architecture_files_table_matches_the_tree():
    """Every runtime module is in docs/architecture.md's table of files, and every path the table names exists."""
    root = ROOT
    table = (root / "docs" / "architecture.md").read_text().split("## Files", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `([^`]+)`", table, re.M))
    named |= {f"svd_demo/{m}" for row in re.findall(r"^\| (`svd_demo/[^|]+)\|", table, re.M)
              for m in re.findall(r"`([\w.]+\.py)`", row)}  # a row may list siblings: `a.py`, `b.py`
    assert all((root / path).exists() for path in named), sorted(p for p in named if not (root / p).exists())
    folders = {path for path in named if path.endswith("/")}
    modules = {p.relative_to(root).as_posix() for package in ("svd_demo", "svd_demo_testing")
               for p in (root / package).rglob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    unnamed = {m for m in modules if m not in named and not any(m.startswith(folder) for folder in folders)}
    assert not unnamed, sorted(unnamed)


# --- README's commands -----------------------------------------------------------------------------------------------


def _readme_block_after(marker: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8").split(marker, 1)[1]
    return re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip()


def _readme_commands(marker: str) -> list[list[str]]:
    """The commands of the README block after `marker`, each split into words (`a && b` is two commands)."""
    return [shlex.split(part) for line in _readme_block_after(marker).splitlines() for part in line.split("&&")]


def test_ci_runs_the_readme_test_command_verbatim():
    """The README's test command installs this repository with an extra that exists and runs pytest, and CI runs
    that very line."""
    import tomllib

    command = _readme_block_after("**Run the tests**")
    install, run = _readme_commands("**Run the tests**")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert install[:4] == ["python", "-m", "pip", "install"] and install[4:] in (["-e", ".[tests]"], [".[tests]"])
    assert "tests" in extras and run[:3] == ["python", "-m", "pytest"]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines, f"{command!r} is not a line of .ci/run"


def test_readme_quickstarts_run_the_installed_command_on_what_it_writes(tiny_models_dir, tmp_path, monkeypatch):
    """Each quickstart installs this repository and runs the `svd-demo` script with a subcommand and options its
    parsers take; offline, the app's models are the files `tiny-models` writes into the folder it is given."""
    import tomllib

    from svd_demo.cli.commands import build_parser, cmd_tiny_models
    from svd_demo.core.models import is_tiny_model
    from svd_demo.core.settings import Settings, parse_settings

    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    gpu = _readme_commands("**On a GPU**")
    offline = _readme_commands("**On a CPU, or without the model hub.**")
    for commands in (gpu, offline):
        assert commands[0] == ["pip", "install", "."]  # this repository, not a package of the same name on PyPI
        assert all(words[0] == "svd-demo" for words in commands[1:])
        assert script["svd-demo"] == "svd_demo.cli.commands:main"
    (app,) = gpu[1:]
    assert app[1] == "app" and parse_settings(app[2:], environ={}) == Settings()  # the real models, by default

    make, app = offline[1:]
    args = build_parser().parse_args(make[1:])
    assert args.func is cmd_tiny_models
    monkeypatch.chdir(tmp_path)
    folder = Path(args.directory)
    folder.mkdir(parents=True)
    for kind in ("svd", "sdxl"):  # the session's tiny pipelines stand in for the two the command would build again
        (folder / kind).symlink_to(tiny_models_dir / kind, target_is_directory=True)
    args.which = [kind for kind in args.which if not (folder / kind).exists()]
    assert cmd_tiny_models(args) == 0
    assert app[1] == "app"
    settings = parse_settings(app[2:], environ={})
    assert is_tiny_model(settings.svd_model) and is_tiny_model(settings.sdxl_model), settings
    assert Path(settings.upscale_model).is_file(), settings.upscale_model


def test_optional_pins_named_in_messages_are_the_extras():
    """An error that says `pip install X==V` names the version the package's extra installs."""
    import tomllib

    from svd_demo.engine.memory import TORCHAO_PIN

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["quantize"] == [TORCHAO_PIN]
    assert "svd-demo[bench,ray,quantize]" in extras["tests"]  # CI runs the tests of every optional path


def test_every_runtime_package_is_installed():
    """pyproject lists the packages (examples/ is mapped in as one): a new subpackage must be on that list."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "svd_demo").rglob("__init__.py")}
    assert on_disk <= listed, f"not installed by pip install .: {sorted(on_disk - listed)}"
