"""Named intents of the free-text prompt and the parameter changes each one stands for (data).

An intent is found by its patterns (regular expressions over a normalised English clause). A
pattern match preceded in its clause by a negation cue ("don't", "no", "not", "never", "without",
"avoid") means the intent's ``negation`` instead (for example "don't sharpen" → ``no_sharpening``).
Intents are tried in table order and a match consumes its words, so the specific phrasings ("less
sharp", "less denoise") come before the generic ones ("sharp", "denoise").

``changes`` name fields of the pipeline's parameters (``models.pipeline``: the per-request plan and
the per-output parameters); the pipeline checks that every name exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ChangeOp = Literal["set", "add", "mul", "max", "min"]


@dataclass(frozen=True)
class Change:
    """One parameter change: ``op`` applied to the field ``target`` with ``value``."""

    target: str
    op: ChangeOp
    value: float | str | bool


@dataclass(frozen=True)
class Intent:
    name: str
    description: str
    patterns: tuple[str, ...]
    changes: tuple[Change, ...]
    negation: str | None = None
    # Language-neutral intents (such as "4K" or "2x") also count inside clauses that are not English.
    neutral: bool = False


def _c(target: str, op: ChangeOp, value: float | str | bool) -> Change:
    return Change(target, op, value)


INTENTS: tuple[Intent, ...] = (
    # Sizes (language-neutral tokens first).
    Intent(
        "size_4k",
        "output long side 3840 px (4K UHD)",
        (r"\b4\s*k\b", r"\buhd\b", r"\b2160p\b", r"\bultra hd\b"),
        (_c("size", "set", "4k"),),
        neutral=True,
    ),
    Intent(
        "size_2x",
        "output twice the input size",
        (r"\b2\s*x\b", r"\bx\s*2\b", r"\b200\s*%", r"\btwice (?:the |as )?(?:size|big|large)\b", r"\bdouble\b"),
        (_c("size", "set", "2x"),),
        neutral=True,
    ),
    Intent(
        "size_4x",
        "output four times the input size",
        (r"\b4\s*x\b", r"\bx\s*4\b", r"\b400\s*%", r"\bfour times\b", r"\bquadruple\b"),
        (_c("size", "set", "4x"),),
        neutral=True,
    ),
    Intent(
        "keep_size",
        "output at the input's own size (restoration without upscaling)",
        (
            r"\b(?:keep|same|original|current) (?:the )?(?:original )?(?:image )?(?:size|resolution|dimensions)\b",
            r"\b(?:don'?t|do not|no|without) (?:upscal\w*|enlarg\w*|resiz\w*)\b",
            r"\bsame size\b",
        ),
        (_c("size", "set", "keep"),),
    ),
    # Faces and colour: their own phrasings carry the negation.
    Intent(
        "leave_faces_alone",
        "faces are kept as in the input (the restoration is faded out over detected faces)",
        (
            r"\b(?:leave|keep|preserve|protect)\b(?: \w+){0,2} faces?"
            r"(?: alone| untouched| as (?:they are|it is|is))?\b",
            r"\b(?:don'?t|do not|never|no) (?:touch|change|alter|edit|retouch|modify|enhance)\w*(?: \w+){0,2} faces?\b",
            r"\bfaces? (?:alone|untouched|as (?:they are|it is|is)|unchanged)\b",
        ),
        (_c("protect_faces", "set", True),),
    ),
    Intent(
        "no_colour_changes",
        "no white balance or warmth change (colours as in the input)",
        (
            r"\bno colou?r (?:changes?|corrections?|shifts?|grading|adjustments?)\b",
            r"\b(?:keep|preserve) (?:the )?(?:original |same )?colou?rs?\b",
            r"\b(?:don'?t|do not|never) (?:change|touch|alter|adjust|correct|shift) (?:the )?colou?rs?\b",
            r"\bcolou?rs? (?:as (?:is|they are)|untouched|unchanged)\b",
            r"\b(?:no|without) white balance\b",
        ),
        (_c("white_balance", "set", 0.0), _c("warmth", "set", 0.0)),
    ),
    # Detail.
    Intent(
        "softer",
        "softer: no sharpening, a lighter restoration, the network's output softened",
        (r"\bless (?:sharp\w*|crisp\w*|detail\w*)\b", r"\bsoft(?:er|en)?\b", r"\bsmooth(?:er)?\b", r"\bgentler\b"),
        (_c("sharpen", "set", 0.0), _c("strength", "mul", 0.8), _c("soften", "max", 0.6)),
        negation="sharper",
    ),
    Intent(
        "sharper",
        "sharper: more sharpening, the network's output not softened",
        (
            r"\bsharp(?:er|en|ened|ening|ness)?\b",
            r"\bcrisp(?:er|ness)?\b",
            r"\bmore (?:detail\w*|definition)\b",
            r"\bdetailed\b",
            r"\bclearer\b",
        ),
        (_c("sharpen", "add", 0.4), _c("soften", "set", 0.0)),
        negation="no_sharpening",
    ),
    Intent("no_sharpening", "no sharpening", (r"\bno sharpening\b",), (_c("sharpen", "set", 0.0),)),
    # Noise.
    Intent(
        "keep_grain",
        "keep the grain: the noise the network removed is partly put back",
        (
            r"\b(?:keep|preserve|retain|leave)\b(?: \w+){0,2} (?:grain|noise|texture)\b",
            r"\bfilm grain\b",
            r"\bgrain(?:y)?\b",
        ),
        (_c("grain", "max", 0.6),),
        negation="more_denoise",
    ),
    Intent(
        "less_denoise",
        "less denoising: a lighter restoration that keeps some noise",
        (r"\bless (?:denois\w*|noise reduction|smoothing|cleaning)\b", r"\b(?:light|gentle|mild)(?:er)? denois\w*\b"),
        (_c("grain", "add", 0.35), _c("strength", "mul", 0.85)),
        negation="more_denoise",
    ),
    Intent(
        "more_denoise",
        "more denoising: a pre-filter before the network, no grain or fidelity pull-back of noise",
        (
            r"\b(?:more|strong(?:er)?|heav(?:y|ier)|extra) (?:denois\w*|noise reduction)\b",
            r"\b(?:remove|reduce|clean(?: up)?|less|kill|eliminate|get rid of)(?: \w+){0,2}"
            r" (?:noise|grain|artifacts|artefacts)\b",
            r"\bdenois\w*\b",
            r"\bnoise reduction\b",
            r"\bcleaner\b",
            r"\bnoiseless\b",
        ),
        (
            _c("denoise", "add", 0.5),
            _c("grain", "set", 0.0),
            _c("fidelity", "mul", 0.5),
            _c("fidelity_smoothing", "max", 3.0),
            _c("strength", "set", 1.0),
            _c("flat_strength", "set", 1.0),
        ),
        negation="keep_grain",
    ),
    # Tone.
    Intent(
        "brighter",
        "brighter: +0.5 EV",
        (
            r"\bbright(?:er|en)?\b",
            r"\blight(?:er|en)\b",
            r"\bmore (?:light|exposure)\b",
            r"\b(?:increase|raise) (?:the )?exposure\b",
        ),
        (_c("exposure_ev", "add", 0.5),),
        negation="keep_brightness",
    ),
    Intent(
        "darker",
        "darker: −0.5 EV",
        (
            r"\bdark(?:er|en)\b",
            r"\bdimmer\b",
            r"\bless (?:light|exposure|bright\w*)\b",
            r"\b(?:lower|reduce) (?:the )?exposure\b",
        ),
        (_c("exposure_ev", "add", -0.5),),
        negation="keep_brightness",
    ),
    Intent("keep_brightness", "no exposure change", (r"\bsame brightness\b",), (_c("exposure_ev", "set", 0.0),)),
    Intent(
        "warmer",
        "warmer white balance",
        (r"\bwarm(?:er|th)?\b", r"\bmore (?:yellow|orange)\b"),
        (_c("warmth", "add", 0.25),),
        negation="neutral_temperature",
    ),
    Intent(
        "cooler",
        "cooler white balance",
        (r"\bcool(?:er)?\b", r"\bcold(?:er)?\b", r"\bmore blue\b"),
        (_c("warmth", "add", -0.25),),
        negation="neutral_temperature",
    ),
    Intent(
        "neutral_temperature",
        "no warmth change",
        (r"\bneutral (?:colou?rs?|white balance)\b",),
        (_c("warmth", "set", 0.0),),
    ),
    Intent(
        "less_contrast",
        "less contrast",
        (r"\b(?:less|lower|reduce(?:d)?|decrease) (?:the )?contrast\b", r"\bflatter\b", r"\bmuted\b"),
        (_c("contrast", "add", -0.2),),
        negation="keep_contrast",
    ),
    Intent(
        "more_contrast",
        "more contrast",
        (
            r"\b(?:more|higher|increase(?:d)?|boost(?:ed)?|stronger) (?:the )?contrast\b",
            r"\bcontrast(?:y)?\b",
            r"\bpunch(?:y|ier)\b",
            r"\bvivid\b",
        ),
        (_c("contrast", "add", 0.2),),
        negation="keep_contrast",
    ),
    Intent("keep_contrast", "no contrast change", (r"\bsame contrast\b",), (_c("contrast", "set", 0.0),)),
    # Content type.
    Intent(
        "illustration",
        "treat as an illustration (the illustration network)",
        (
            r"\b(?:illustration|drawing|cartoon|anime|manga|comic|artwork|painting|sketch|logo|clip ?art|vector)s?\b",
            r"\bdigital art\b",
            r"\bgraphics?\b",
        ),
        (_c("content", "set", "illustration"),),
        negation="photo",
    ),
    Intent(
        "photo",
        "treat as a photograph (the photo network)",
        (r"\b(?:photo|photograph|snapshot|selfie|portrait|picture)s?\b",),
        (_c("content", "set", "photo"),),
        negation="illustration",
    ),
)

NEGATION_CUE = r"\b(?:don'?t|dont|do not|does not|doesn'?t|no|not|never|without|avoid|stop|nothing)\b"

# Words that make a clause count as English (besides the intents' own words): a clause none of whose
# words is English is another language and changes nothing.


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ENGLISH_WORDS = _words(
    """a an the it its this that these those please pls plz make makes made more less much very bit
    little slightly lot lots too so some any and or but with without of to for in on at by as is are be
    been was were can could would should i me my we our you your image photo picture pic overall
    keep leave preserve don't dont do not no never avoid just also really quite up down same original
    them they their add increase reduce lower higher raise improve enhance fix get rid remove
    tone colour color colours colors size resolution face faces skin light exposure white balance
    contrast noise grain detail details sharp sharper sharpen soft softer warm warmer cool cooler
    bright brighter dark darker clean cleaner natural look looks looking want like need upscale upscaled
    upscaling enlarge restore restored restoration quality better nicer good best enhanced"""
)
