"""What callers may ask the server to load: models and LoRAs by name, from lists the operator made at start-up.

In public mode (`settings.is_public`) a caller picks a video, image or upscale model from the presets and the
operator's `--allow-model` list, and a LoRA from the operator's list and `--lora-dir`, always by name: nothing a
caller sends is used as a path, and anything else gets one refusal per parameter whose text is the same whatever
exists on the server, decided from the lists alone (no file system, no network). Names of local folders and files
are their base names there, so the page and the sidecars name no server path.

In private mode (loopback, one person) a name from the lists works too, and anything else is checked as before:
hub ids, local folders and files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from svd_demo.core.errors import InputError
from svd_demo.core.lora_refs import LORA_FILE_NAME, check_ref
from svd_demo.core.models import (
    DEFAULT_SDXL_MODEL,
    DEFAULT_SVD_MODEL,
    SDXL_PRESETS,
    SVD_PRESETS,
    UPSCALER_PRESETS,
    check_model_ref,
    check_upscaler_ref,
)
from svd_demo.core.settings import Settings, is_public

KINDS = {"video": "svd", "image": "sdxl", "upscale": "upscale", "lora": "lora"}  # --allow-model KIND= -> ours
PARAMS = {"svd": "svd_model", "sdxl": "sdxl_model", "upscale": "upscale_model", "lora": "loras"}


def _is_local(ref: str) -> bool:
    """An operator's reference names a local folder or file (read at start-up only, never for a caller's value)."""
    return ref.startswith((".", "/", "~")) or Path(ref).expanduser().exists()


def read_allowed(settings: Settings) -> list[tuple[str, str]]:
    """(kind, reference) pairs from --allow-model and --allow-models-file; ValueError naming a bad entry."""
    lines = list(settings.allow_model)
    if settings.allow_models_file:
        text = Path(settings.allow_models_file).expanduser().read_text(encoding="utf-8")
        lines += [line.split("#", 1)[0].strip() for line in text.splitlines()]
    pairs = []
    for line in filter(None, lines):
        kind, sep, ref = line.partition("=")
        if not sep or kind.strip() not in KINDS or not ref.strip():
            raise ValueError(f"--allow-model {line!r}: write KIND=REF with KIND one of {', '.join(KINDS)}, e.g. "
                             f"video={DEFAULT_SVD_MODEL}.")
        pairs.append((KINDS[kind.strip()], ref.strip()))
    return pairs


def lora_dir_entries(folder: str) -> dict[str, str]:
    """NAME -> file for each NAME.safetensors in `folder`, or NAME/ holding the file `save_lora_weights` writes."""
    if not folder:
        return {}
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ValueError(f"--lora-dir {folder!r} is not a folder.")
    found = {}
    for path in sorted(root.iterdir()):
        if path.is_file() and path.suffix == ".safetensors":
            found[path.stem] = str(path.resolve())
        elif (path / LORA_FILE_NAME).is_file():
            found[path.name] = str((path / LORA_FILE_NAME).resolve())
    return found


@dataclass(frozen=True)
class Access:
    """The models and LoRAs on offer, by name (name -> what is loaded), and whether only those are allowed."""

    public: bool
    defaults: Mapping[str, str]  # kind -> the settings' model (its name)
    models: Mapping[str, Mapping[str, str]]  # kind -> name -> hub id, preset name or local path
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # kind -> name -> picker label
    loras: Mapping[str, str] = field(default_factory=dict)  # name -> hub id or local file

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        models: dict[str, dict[str, str]] = {kind: {} for kind in ("svd", "sdxl", "upscale")}
        labels: dict[str, dict[str, str]] = {kind: {} for kind in models}
        defaults: dict[str, str] = {}
        public = is_public(settings)

        def public_name(ref: str) -> str:
            """Public mode names a local model by its base name; private mode keeps the path (sidecars record it)."""
            return Path(ref).expanduser().name if public and _is_local(ref) else ref

        def add(kind: str, ref: str, label: str | None = None) -> str:
            name = public_name(ref)
            if models[kind].get(name, ref) != ref:
                raise ValueError(f"Two {kind} models are both called {name!r} ({models[kind][name]} and {ref}): "
                                 "public mode offers local models by their folder or file name; rename one.")
            models[kind][name] = ref
            labels[kind].setdefault(name, label or f"{Path(ref).name or ref} (from settings)")
            return name

        # The settings' own models first (they are the pickers' starting values), then the presets, then the lists.
        for kind, ref in (("svd", settings.svd_model or DEFAULT_SVD_MODEL),
                          ("sdxl", settings.sdxl_model or DEFAULT_SDXL_MODEL),
                          ("upscale", settings.upscale_model)):
            preset_labels = {p.model_id: p.label for p in (*SVD_PRESETS, *SDXL_PRESETS)} | \
                {p.name: p.label for p in UPSCALER_PRESETS}
            defaults[kind] = add(kind, ref, preset_labels.get(ref))
        for preset in SVD_PRESETS:
            add("svd", preset.model_id, preset.label)
        for image_preset in SDXL_PRESETS:
            add("sdxl", image_preset.model_id, image_preset.label)
        for upscaler in UPSCALER_PRESETS:
            add("upscale", upscaler.name, upscaler.label)
        loras = lora_dir_entries(settings.lora_dir)
        for kind, ref in read_allowed(settings):
            if kind == "lora":
                loras[public_name(ref)] = ref
            else:
                add(kind, ref, f"{Path(ref).name if _is_local(ref) else ref} (allowed)")
        return cls(public=public, defaults=defaults, models=models, labels=labels, loras=loras)

    # ------------------------------------------------------------------------------------------------ models

    def choices(self, kind: str) -> list[tuple[str, str]]:
        """(label, name) pairs for a model picker: every model on offer, the settings' first."""
        return [(self.labels[kind][name], name) for name in self.models[kind]]

    def refusal(self, kind: str) -> InputError:
        """The one answer to anything not on offer: it names the parameter and the choices, nothing else."""
        if kind == "lora":
            offered = ", ".join(self.loras) or "none"
            return InputError(f"`loras`: this server offers only the LoRAs its operator listed, by name: {offered}.")
        return InputError(f"`{PARAMS[kind]}` must be one of the models this server offers: "
                          f"{', '.join(self.models[kind])}.")

    def model(self, kind: str, value: object) -> tuple[str, str]:
        """(name, what to load) for a caller's model value (None or "": the settings' model).

        Public mode: a name on offer, else the refusal. Private mode: a name on offer, else any valid reference
        (a hub id or a local path, checked when it loads), as it was sent.
        """
        default = self.defaults[kind]
        if value is None or value == "":
            return default, self.models[kind][default]
        if isinstance(value, str) and value in self.models[kind]:
            return value, self.models[kind][value]
        if self.public:
            raise self.refusal(kind)
        if kind == "upscale":
            ref = check_upscaler_ref(value)
        else:
            ref = check_model_ref(value, {"svd": "video model", "sdxl": "image model"}[kind],
                                  DEFAULT_SDXL_MODEL if kind == "sdxl" else DEFAULT_SVD_MODEL) or ""
        return (ref, ref) if ref else (default, self.models[kind][default])

    def model_name(self, kind: str, value: object) -> str | None:
        """A restored file's model as a picker takes it (its name), or None if it is not on offer here."""
        try:
            return self.model(kind, value)[0] if value else None
        except InputError:
            return None

    def scrub(self, text: str) -> str:
        """`text` (an error message) with each local model's and LoRA's path replaced by its name, in public mode."""
        if not self.public:
            return text
        pairs = [*((source, name) for names in self.models.values() for name, source in names.items()),
                 *((source, name) for name, source in self.loras.items())]
        for source, name in sorted(pairs, key=lambda pair: -len(pair[0])):  # longest first: a folder's files
            if source != name:
                text = text.replace(source, name)
        return text

    # ------------------------------------------------------------------------------------------------- LoRAs

    def lora_ref(self, ref: str) -> str:
        """A caller's LoRA reference, checked (for `parse_loras`): a listed name, or in private mode any valid one."""
        ref = ref.strip() if isinstance(ref, str) else ref
        if isinstance(ref, str) and ref in self.loras:
            return ref
        if self.public:
            raise self.refusal("lora")
        return check_ref(ref)

    def lora_source(self, ref: str) -> str:
        """What to load for a checked LoRA reference: a listed name's file or hub id, else the reference itself."""
        return self.loras.get(ref, ref)
