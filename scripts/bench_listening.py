"""Time the quick-listening tools on one generated song: the preview, and the mixer's remix of a cached result.

    python scripts/bench_listening.py --minutes 3 --threads 2      # the default model (the bundled demo)

The song is generated (utils/synth.py) and starts with `--intro` seconds of its band alone, so the preview
has to look for the voice.

Prints where the voice really starts and where the preview placed its window, the preview's latency (first
request, and again for the same file), and the remix time of a separated song: the first remix (the stems
read from their files) and a second one at other levels (the stems still in memory), next to the mix alone.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ui.config import AppConfig  # noqa: E402
from ui.listening import Listening, Playback  # noqa: E402
from ui.results import SeparationOptions  # noqa: E402
from ui.service import SeparationService  # noqa: E402
from utils.activity import detect_vocal_activity  # noqa: E402
from utils.audio import write_audio  # noqa: E402
from utils.mixer import MixLevels, read_stem, remix  # noqa: E402
from utils.synth import SongConfig, generate_song  # noqa: E402


logger = logging.getLogger("bench_listening")


def timed(action):
    start = time.perf_counter()
    value = action()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--seed", type=int, default=31337)
    parser.add_argument("--intro", type=float, default=40.0, help="seconds of band alone before the song starts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    service = SeparationService(AppConfig.from_env(), checkpoint=args.checkpoint)
    listening = Listening(service)
    minutes = args.minutes
    with tempfile.TemporaryDirectory() as folder:
        # A song with an instrumental intro: the generated song's own band for `--intro` seconds, then the song.
        song = generate_song(args.seed, SongConfig(duration_s=60 * minutes - args.intro, vocal_fraction=0.3))
        intro = round(args.intro * song.sample_rate)
        mixture = np.concatenate([song.accompaniment[:, :intro], song.mixture], axis=1)
        vocals = np.concatenate([np.zeros((2, intro), np.float32), song.stems["vocals"]], axis=1)
        path = write_audio(Path(folder) / "song.flac", mixture, song.sample_rate, "flac", 16).path
        truth = detect_vocal_activity(vocals, song.sample_rate).segments
        logger.info("song generated; first phrase at %.1f s", truth[0][0])
        (preview, window), first_s = timed(lambda: listening.preview(path, SeparationOptions()))
        logger.info("preview in %.1f s", first_s)
        _, again_s = timed(lambda: listening.preview(path, SeparationOptions()))
        result, whole_s = timed(lambda: service.separate(path, SeparationOptions()))
        logger.info("whole song in %.1f s", whole_s)
        playback = Playback.of(result)
        _, first_remix_s = timed(lambda: listening.remix(playback, MixLevels(-6.0, 0.0)))
        _, second_remix_s = timed(lambda: listening.remix(playback, MixLevels(-12.0, 1.5)))
        vocals, _ = read_stem(playback.vocals_path)
        accompaniment, _ = read_stem(playback.accompaniment_path)
        _, mix_s = timed(lambda: remix(vocals, accompaniment, MixLevels(-3.0, 0.0)))
    service.close()

    print(f"model: {result.model_description}; torch threads: {args.threads}")
    print(f"{minutes:g}-minute song, first sung phrase at {truth[0][0]:.1f} s (from the true vocal stem)")
    print(f"preview window {window.start_s:.1f}-{window.end_s:.1f} s (voice found at "
          f"{window.first_voice_s if window.first_voice_s is None else round(window.first_voice_s, 1)} s)")
    print(f"preview latency: {first_s:.1f} s the first time (network {preview.processing_s:.1f} s for the window), "
          f"{again_s:.2f} s for the same file again; the whole song {whole_s:.1f} s (preview / whole: "
          f"{first_s / whole_s:.2f})")
    print(f"remix ({result.options.output_format}, {result.options.bit_depth}-bit): {first_remix_s:.2f} s the first "
          f"time ({first_remix_s / minutes:.2f} s per minute; stems read from disk), {second_remix_s:.2f} s at new "
          f"levels ({second_remix_s / minutes:.2f} s per minute; stems in memory); the mix alone {mix_s:.3f} s")


if __name__ == "__main__":
    main()
