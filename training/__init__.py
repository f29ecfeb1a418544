"""Training and evaluation of the embedded "nano" checkpoint (CPU only): not part of the runtime engine or the CLI.

    python -m streamdiffvsr.training.train_nano --out DIR
    python -m streamdiffvsr.training.eval_nano [--model DIR]

Depends on the engine (``streamdiffvsr``) only, so what is trained is what the engine runs.
"""
