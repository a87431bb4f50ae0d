"""The ``p2r`` model of lmms-eval (needs lmms-eval): p2r's backend on frames from p2r's sampler.

``--model p2r --model_args pretrained=SPEC,OPTION=VALUE,...``: ``SPEC`` is any p2r model spec
(``demo``, a checkpoint folder, a hub id, ``replay:FILE``) and the options are p2r-eval's
model, frame and decoding options with underscores for dashes (``input_policy=video-r1``,
``frames=32``, ``fps=1``, ``max_pixels=200704``, ``max_new_tokens=1024``, ``temperature=0``,
``backend=vllm``, ``frame_cache=DIR``...), parsed by p2r-eval's own parser, so defaults and
checks are p2r-eval's (without frame options: the ``video-r1`` input policy).
``--batch_size`` and ``--device`` are lmms-eval's own flags.

Each request's visuals (the task's ``doc_to_visual``) become one p2r request: a video path or
a frame folder is sampled by :func:`~p2r_eval.media.requests.sample_media` (through the frame cache
when ``frame_cache`` is set; a frame folder at the rate its p2r document carries, and a frame
folder of another task's document, which names no rate, is an error), an image path or a PIL
image is read as RGB. The prompt is
lmms-eval's context. The backend renders the chat and generates exactly as in p2r-eval, in
batches of ``batch_size``, one task at a time (:func:`task_batches`). Decoding is the
model's (its model_args) for the whole run: a task asking for another ``max_new_tokens`` or
for sampling gets a warning. A task's ``until`` strings cut the output, as lmms-eval's models
do. A media error stops the run (p2r-eval records it and goes on).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm import tqdm

from p2r_eval.cli.evaluate import load_configured_backend, settings_from_args
from p2r_eval.cli.main import build_eval_parser
from p2r_eval.core.request import Request
from p2r_eval.interop.lmms_docs import request_identity
from p2r_eval.media.requests import load_image, sample_media
from p2r_eval.media.video import IMAGE_SUFFIXES, FramePolicy, VideoError
from p2r_eval.models.base import BackendError, DecodingSettings

log = logging.getLogger(__name__)

MODEL_OPTIONS = frozenset({
    "backend", "tensor_parallel_size", "input_policy", "frames", "fps", "min_frames",
    "max_frames",
    "max_pixels", "max_new_tokens", "temperature", "top_p", "seed", "frame_cache",
})
"""p2r-eval options that choose the model, its frames and its decoding; the rest of p2r-eval's
options (tasks, data root, prompt, protocol, judge...) belong to the task YAML or do not
apply."""


def p2r_arguments(pretrained: str, batch_size: int, device: str | None,
                  options: dict[str, Any]) -> argparse.Namespace:
    """p2r-eval's parsed command line for these model_args (ValueError for bad ones)."""
    unknown = sorted(set(options) - MODEL_OPTIONS)
    if unknown:
        raise ValueError(f"p2r model_args: unknown option(s) {', '.join(unknown)}; valid: "
                         f"pretrained, {', '.join(sorted(MODEL_OPTIONS))}")
    argv = ["--model", pretrained, "--batch-size", str(batch_size)]
    if device is not None:
        argv += ["--device", device]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    try:
        return build_eval_parser().parse_args(argv)
    except SystemExit as error:  # argparse has printed why
        raise ValueError(f"p2r model_args {options} rejected by p2r-eval's parser") from error


def cut_at_stop_strings(text: str, until: Sequence[str]) -> str:
    """``text`` up to the first of the task's stop strings (all of it when there are none)."""
    cut = len(text)
    for stop in until:
        if stop:
            found = text.find(stop)
            if found != -1:
                cut = min(cut, found)
    return text[:cut]


def stop_strings(gen_kwargs: dict[str, Any]) -> list[str]:
    until = gen_kwargs.get("until") or []
    return [until] if isinstance(until, str) else list(until)


def decoding_differences(gen_kwargs: dict[str, Any], decoding: DecodingSettings) -> list[str]:
    """What a task's generation_kwargs ask for that the model's decoding does not do."""
    differences = []
    wanted_tokens = gen_kwargs.get("max_new_tokens")
    if wanted_tokens is not None and int(wanted_tokens) != decoding.max_new_tokens:
        differences.append(f"max_new_tokens={wanted_tokens}")
    sampling = bool(gen_kwargs.get("do_sample")) or float(gen_kwargs.get("temperature") or 0) > 0
    if sampling != decoding.do_sample:
        differences.append("sampling" if sampling else "greedy decoding")
    return differences


def visual_arrays(
    visuals: Sequence[Any], policy: FramePolicy, frame_cache: Path | None, where: str,
    frame_folder_fps: float | None = None,
) -> tuple[list[tuple[np.ndarray, float]], list[np.ndarray]]:
    """``(videos as (frames, fps), images)`` of a request's visuals; a frame folder's frames
    were taken at ``frame_folder_fps`` (its document's)."""
    videos: list[tuple[np.ndarray, float]] = []
    images: list[np.ndarray] = []
    for visual in visuals:
        if isinstance(visual, (str, Path)):
            path = Path(visual)
            try:
                if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                    images.append(load_image(path))
                    continue
                kind = "frames" if path.is_dir() else "video"
                sampled = sample_media(path, kind, policy, frame_cache,
                                       frame_folder_fps=frame_folder_fps)
            except (VideoError, OSError) as error:
                raise BackendError(f"{where}: {error}") from error
            videos.append((sampled.frames, sampled.sample_fps))
        elif hasattr(visual, "convert"):  # a PIL image, lmms-eval's usual image visual
            images.append(np.array(visual.convert("RGB")))
        else:
            raise BackendError(f"{where}: unsupported visual of type {type(visual).__name__}; "
                               "expected a media path or a PIL image")
    if len(videos) > 1 or len(images) > 1:
        raise BackendError(f"{where}: {len(videos)} videos and {len(images)} images; a p2r "
                           "request holds at most one video and one image")
    return videos, images


def task_batches(instances: Sequence[Instance], size: int) -> Iterator[list[Instance]]:
    """Consecutive instances in batches of at most ``size``, never two tasks in one batch:
    the batches p2r-eval makes (one task at a time, items in order), so that left padding,
    and with it every output, is the same as in a p2r-eval run with that batch size."""
    batch: list[Instance] = []
    for instance in instances:
        if batch and (len(batch) == size or instance.args[4] != batch[0].args[4]):
            yield batch
            batch = []
        batch.append(instance)
    if batch:
        yield batch


class P2RModel(lmms):
    """lmms-eval's view of a p2r backend (see the module docs)."""

    is_simple = True

    def __init__(
        self,
        pretrained: str = "demo",
        batch_size: int | str = 1,
        device: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        if not str(batch_size).isdigit():
            raise ValueError(f"p2r: batch_size must be a number, got {batch_size!r}")
        args = p2r_arguments(str(pretrained), int(batch_size), device, options)
        self.settings = settings_from_args(args)
        self.backend = load_configured_backend(self.settings, args)
        self._warned_tasks: set[str] = set()

    def request(self, instance: Instance) -> Request:
        """The p2r request of one lmms-eval generate_until instance."""
        context, gen_kwargs, doc_to_visual, doc_id, task, split = instance.args
        self.warn_about_decoding(task, gen_kwargs)
        doc = self.task_dict[task][split][doc_id]
        item_task, item_id = request_identity(doc, task, doc_id)
        if not self.backend.needs_media:  # replay: stored outputs, no media to read
            return Request(item_task, item_id, context)
        visuals = [visual for visual in doc_to_visual(doc) or [] if visual is not None]
        videos, images = visual_arrays(visuals, self.settings.frame_policy,
                                       self.settings.frame_cache, f"{item_task}/{item_id}",
                                       doc.get("frame_folder_fps"))
        frames, fps = videos[0] if videos else (None, None)
        return Request(item_task, item_id, context, frames=frames, fps=fps,
                       image=images[0] if images else None)

    def warn_about_decoding(self, task: str, gen_kwargs: dict[str, Any]) -> None:
        differences = decoding_differences(gen_kwargs, self.settings.decoding)
        if differences and task not in self._warned_tasks:
            self._warned_tasks.add(task)
            log.warning("%s asks for %s; the p2r model decodes as its model_args say: %s",
                        task, ", ".join(differences), self.settings.decoding.as_dict())

    def generate_until(self, requests: list[Instance]) -> list[str]:
        outputs: list[str] = []
        bar = tqdm(total=len(requests), desc="p2r", disable=self.rank != 0)
        for chunk in task_batches(requests, self.settings.batch_size):
            texts = self.backend.generate([self.request(instance) for instance in chunk])
            outputs += [cut_at_stop_strings(text, stop_strings(instance.args[1]))
                        for instance, text in zip(chunk, texts, strict=True)]
            bar.update(len(chunk))
        bar.close()
        return outputs

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError("the p2r model generates; it scores no loglikelihoods")

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("the p2r model answers single-turn requests only")
