"""Where weights come from: safe reading of official `.ckpt` files (`checkpoint`), the converter to the Hub
format (`convert`, `python -m model.weights.convert`), and the one loader the app and CLI use (`pretrained`)."""
