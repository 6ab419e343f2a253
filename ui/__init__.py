"""The web app's work, kept out of `app.py`: settings, the separation service with its result cache, the
texts shown to the user, and the Gradio callbacks. Everything here runs (and is tested) without a browser.

    config.py     AppConfig: limits and switches, from the environment
    service.py    SeparationService: the loaded model, one song in -> stem files, plots and numbers out
    text.py       what the user reads: summary, phrase table, report.md, model panel
    callbacks.py  the functions Gradio calls; map failures to gr.Error, feed gr.Progress
"""
