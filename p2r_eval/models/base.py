"""The one small interface every model backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from p2r_eval.core.request import Request

if TYPE_CHECKING:
    from p2r_eval.media.video import ProcessorFrameSize


@dataclass(frozen=True)
class DecodingSettings:
    """Generation settings, recorded in every results file.

    The default is greedy decoding with Video-R1's 1024 new tokens. Video-R1's own vLLM runs
    used temperature 0.1 and top_p 0.001, which is greedy in all but name. Greedy decoding
    uses no temperature or top_p, and records None for both; sampling needs a temperature
    above 0, and top_p defaults to 1.0 (no nucleus cut).
    """

    max_new_tokens: int = 1024
    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.do_sample:
            if self.temperature is not None or self.top_p is not None:
                raise ValueError("greedy decoding takes no temperature or top_p (got "
                                 f"{self.temperature}, {self.top_p}); set do_sample to sample")
            return
        if self.temperature is None or not self.temperature > 0:
            raise ValueError(f"sampling needs a temperature > 0, got {self.temperature}")
        if self.top_p is None:
            object.__setattr__(self, "top_p", 1.0)
        elif not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Backend(Protocol):
    """A model backend. ``needs_media`` is False for backends that replay stored outputs.
    ``frame_size``: the size its processor gives video frames, where frames can be resized to
    it right after decoding (:mod:`p2r_eval.models.frame_size`); None where they are given at
    their decoded size."""

    name: str
    needs_media: bool
    frame_size: ProcessorFrameSize | None

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the model: path, config hash, weights hash, dtype, device."""
        ...

    def decoding(self) -> DecodingSettings: ...

    def generate(self, requests: Sequence[Request]) -> list[str]:
        """One output string per request, in order."""
        ...


class BackendError(RuntimeError):
    """A backend could not be created or could not answer a request."""
