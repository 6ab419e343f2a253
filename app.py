"""BSMamba2 vocal separation, as a Gradio app (a Hugging Face Space): upload a song, hear the voice and the
band apart, see where the voice is, download the stems.

    python app.py                                  # the default model ($BSMAMBA2_CHECKPOINT or the demo)
    python app.py --checkpoint path/or/repo-id --port 7860 --share

It also serves Gradio's MCP server at /gradio_api/mcp/ (tools: the separation and the preview).

This file only builds the page and wires events; the work is in `ui/` (plain functions, tested without a
browser).
"""

from __future__ import annotations

import argparse
import functools
import logging
from typing import Any

import gradio as gr

from model.inference.separator import OFFICIAL_CHUNK_SECONDS
from ui.callbacks import Callbacks, bit_depth_choices, existing_examples, only_one_input
from ui.config import CONCURRENCY_LIMIT, DELETE_CACHE, MAX_FILE_SIZE, QUEUE_MAX_SIZE, AppConfig
from ui.listening import Listening
from ui.listening_callbacks import ListeningCallbacks, preset_levels
from ui.results import DEFAULT_BIT_DEPTH, DEFAULT_FORMAT, DEFAULT_OVERLAP, SeparationOptions
from ui.service import SeparationService
from utils.audio import OUTPUT_FORMATS
from ui.text import SEGMENT_HEADERS, model_panel_markdown
from utils.mixer import MAX_GAIN_DB, MUTE_DB, PRESETS
from utils.preview import PREVIEW_S

TITLE = "BSMamba2 vocal separation"
INTRO = f"""# {TITLE}
Upload a song to split it into **vocals** and **accompaniment**, and see **where the voice is**.
The model is BSMamba2 (Kim & Choi, 2025, *Mamba2 Meets Silence: Robust Vocal Source Separation for Sparse
Regions*). Songs are processed in {OFFICIAL_CHUNK_SECONDS:g}-second chunks; nothing you upload is kept after
the results expire."""
OVERLAP_LABELS = [("0 % (as in the paper, fastest)", 0.0), ("25 %", 0.25), ("50 % (smoothest, slowest)", 0.5)]
THEME = gr.themes.Soft(primary_hue="pink", secondary_hue="slate")
CSS = ("#separate-button, #preview-button {min-height: 3rem} .result-downloads button {flex: 1} "
       "#phrase-label {text-align: center; align-self: center}")
LEVEL_STEP_DB = 0.5
MIXER_INFO = f"{MUTE_DB:g} dB mutes it; 0 dB is the level in the song."


def build_demo(service: SeparationService) -> gr.Blocks:
    """The page: inputs and settings on the left, players, downloads, numbers and plots on the right."""
    config = service.config
    callbacks = Callbacks(service)
    listening = ListeningCallbacks(callbacks, Listening(service))
    with gr.Blocks(title=TITLE, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(INTRO)
        gr.Markdown(model_panel_markdown(service.default_model, service.load_error), elem_id="model-panel")
        with gr.Row():
            with gr.Column(scale=2):
                song = gr.Audio(type="filepath", sources=["upload", "microphone"], label="Song",
                                elem_id="song-input")
                any_file = gr.File(label="…or any audio or video file (M4A, MP4, WebM, MKV…)", type="filepath",
                                   file_types=["audio", "video"], elem_id="file-input")
                with gr.Accordion("Settings", open=False):
                    output_format = gr.Radio(list(OUTPUT_FORMATS), value=DEFAULT_FORMAT, label="Output format")
                    bit_depth = gr.Radio(list(OUTPUT_FORMATS[DEFAULT_FORMAT]), value=DEFAULT_BIT_DEPTH,
                                         label="Bit depth")
                    overlap = gr.Radio(OVERLAP_LABELS, value=DEFAULT_OVERLAP, label="Chunk overlap",
                                       info="Overlapping chunks are cross-faded, which hides the chunk seams.")
                    clean_up = gr.Checkbox(
                        SeparationOptions().clean_up, label="Sparse-region clean-up",
                        info="Silence the vocal stem between sung phrases (removes bleed; it goes to the "
                             "accompaniment).",
                    )
                    checkpoint = gr.Textbox(
                        value="", label="Checkpoint", placeholder="empty = the model loaded at start-up",
                        info="A model folder, a Hugging Face repo id or an official .ckpt file.",
                        visible=config.allow_checkpoint_choice,
                    )
                with gr.Row():
                    separate = gr.Button("Separate", variant="primary", elem_id="separate-button", scale=2)
                    preview = gr.Button(f"Preview ({PREVIEW_S:g} s from the voice)", elem_id="preview-button",
                                        scale=1)
                if examples := existing_examples(config.examples_dir):
                    gr.Examples(examples, inputs=[song], label="Examples", cache_examples=False)
            with gr.Column(scale=3):
                summary = gr.Markdown(elem_id="summary")
                vocals = gr.Audio(label="Vocals", type="filepath", interactive=False, elem_id="vocals-player")
                accompaniment = gr.Audio(label="Accompaniment", type="filepath", interactive=False,
                                         elem_id="accompaniment-player")
                with gr.Row():
                    previous_phrase = gr.Button("◀ Previous phrase", size="sm", elem_id="previous-phrase")
                    phrase_text = gr.Markdown(elem_id="phrase-label")
                    next_phrase = gr.Button("Next phrase ▶", size="sm", elem_id="next-phrase")
                with gr.Row(elem_classes="result-downloads"):
                    vocals_file = gr.DownloadButton("Vocals", elem_id="download-vocals")
                    accompaniment_file = gr.DownloadButton("Accompaniment", elem_id="download-accompaniment")
                    zip_file = gr.DownloadButton("Everything (.zip)", variant="primary", elem_id="download-zip")
                with gr.Row():
                    karaoke_video = gr.Video(label="Karaoke video (accompaniment only)", visible=False,
                                             interactive=False, elem_id="karaoke-video")
                    vocals_video = gr.Video(label="Vocals-only video", visible=False, interactive=False,
                                            elem_id="vocals-video")
                with gr.Accordion("Mixer: karaoke, a cappella, or your own balance", open=True, elem_id="mixer"):
                    with gr.Row():
                        vocals_level = gr.Slider(MUTE_DB, MAX_GAIN_DB, value=0.0, step=LEVEL_STEP_DB,
                                                 label="Vocals (dB)", info=MIXER_INFO, elem_id="vocals-level")
                        accompaniment_level = gr.Slider(MUTE_DB, MAX_GAIN_DB, value=0.0, step=LEVEL_STEP_DB,
                                                        label="Accompaniment (dB)", elem_id="accompaniment-level")
                    with gr.Row():
                        preset_buttons = {name: gr.Button(name.capitalize(), size="sm",
                                                          elem_id=f"preset-{name.replace(' ', '-')}")
                                          for name in PRESETS}
                    remix_player = gr.Audio(label="Remix", type="filepath", interactive=False,
                                            elem_id="remix-player")
                    remix_file = gr.DownloadButton("Remix", elem_id="download-remix")
                # Plot labels would sit on top of the figures' legends: headings go above instead.
                gr.Markdown("#### Where the voice is")
                activity_plot = gr.Plot(label="Where the voice is", show_label=False, elem_id="activity-plot")
                segments = gr.Dataframe(headers=SEGMENT_HEADERS, label="Sung phrases", interactive=False,
                                        max_height=300, elem_id="segments")
                gr.Markdown("#### Waveforms: mixture (grey) and vocals")
                waveform_plot = gr.Plot(label="Waveforms", show_label=False, elem_id="waveform-plot")
                gr.Markdown("#### Spectrograms")
                spectrogram_plot = gr.Plot(label="Spectrograms", show_label=False, elem_id="spectrogram-plot")

        # API-only components: /separate takes one file and returns the two stems and the phrases as JSON.
        with gr.Group(visible=False):
            api_song = gr.File(label="song", type="filepath")
            # The endpoints' own settings: Gradio describes a Radio with numeric choices as a string, which
            # MCP clients cannot fill in; these declare numbers as numbers.
            api_settings = [
                gr.Dropdown(list(OUTPUT_FORMATS), value=DEFAULT_FORMAT, label="output_format"),
                gr.Number(DEFAULT_BIT_DEPTH, precision=0, label="bit_depth"),
                gr.Number(DEFAULT_OVERLAP, label="overlap"),
                gr.Checkbox(SeparationOptions().clean_up, label="clean_up"),
                gr.Textbox("", label="checkpoint"),
            ]
            api_vocals = gr.File(label="vocals")
            api_accompaniment = gr.File(label="accompaniment")
            api_activity = gr.JSON(label="activity")
            api_trigger = gr.Button()
            api_preview_trigger = gr.Button()
        playback = gr.State(None)
        phrase = gr.State(0)

        settings = [output_format, bit_depth, overlap, clean_up, checkpoint]
        song.upload(only_one_input, outputs=any_file, queue=False, api_visibility="private")
        any_file.upload(only_one_input, outputs=song, queue=False, api_visibility="private")
        output_format.change(bit_depth_choices, output_format, bit_depth, queue=False, api_visibility="private")
        page = [vocals, accompaniment, vocals_file, accompaniment_file, zip_file, summary, segments,
                waveform_plot, spectrogram_plot, activity_plot,
                playback, phrase, phrase_text, remix_player, remix_file, karaoke_video, vocals_video]
        separate.click(listening.separate, inputs=[song, any_file, *settings], outputs=page,
                       api_name="separate_ui", api_visibility="undocumented")
        preview.click(listening.preview, inputs=[song, any_file, *settings], outputs=page,
                      api_name="preview_ui", api_visibility="undocumented")
        jump = dict(outputs=[phrase, phrase_text, vocals, accompaniment, remix_player], queue=False,
                    api_visibility="private")
        segments.select(listening.select_phrase, inputs=playback, **jump)
        previous_phrase.click(listening.previous_phrase, inputs=[playback, phrase], **jump)
        next_phrase.click(listening.next_phrase, inputs=[playback, phrase], **jump)
        mix = dict(fn=listening.remix, inputs=[playback, vocals_level, accompaniment_level],
                   outputs=[remix_player, remix_file], api_visibility="private")
        for level in (vocals_level, accompaniment_level):
            level.release(**mix)
        for name, button in preset_buttons.items():
            button.click(functools.partial(preset_levels, name), outputs=[vocals_level, accompaniment_level],
                         queue=False, api_visibility="private").then(**mix)
        api_trigger.click(
            callbacks.separate_api,
            inputs=[api_song, *api_settings],
            outputs=[api_vocals, api_accompaniment, api_activity],
            api_name="separate",
        )
        api_preview_trigger.click(
            listening.preview_api,
            inputs=[api_song, *api_settings],
            outputs=[api_vocals, api_accompaniment, api_activity],
            api_name="preview",
        )
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT)
    return demo


def launch(demo: gr.Blocks, service: SeparationService, **options: Any) -> Any:
    """`demo.launch` with the app's theme, upload limit and file access; `options` go to `launch`."""
    return demo.launch(
        theme=THEME,
        css=CSS,
        max_file_size=MAX_FILE_SIZE,
        allowed_paths=[str(service.work_root)],
        **options,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--checkpoint", help="model folder, Hub repo id or .ckpt (default: $BSMAMBA2_CHECKPOINT "
                                             "or the bundled demo model)")
    parser.add_argument("--host", default=None, help="address to listen on (default: Gradio's, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860)")
    parser.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = SeparationService(AppConfig.from_env(), checkpoint=args.checkpoint)
    service.warm_up()  # with BSMAMBA2_COMPILE on a CPU: compile now, not during the first song
    demo = build_demo(service)
    try:
        launch(demo, service, server_name=args.host, server_port=args.port, share=args.share, mcp_server=True)
    finally:
        service.close()


if __name__ == "__main__":
    main()
