"""``radiobio train COHORT -c CONFIG.yaml -o MODEL_DIR``: train a segmentation model bundle;
``radiobio train COHORT --from BUNDLE -o MODEL_DIR [-c overrides.yaml]``: fine-tune an existing one."""

from __future__ import annotations

import argparse
import os
import shlex

from radiobio.cli._common import add_quiet, fail

EXAMPLES = """examples:
  radiobio train cohort.csv -c models/hippocampus-3d/config.yaml -o my-model
  radiobio train new_scanner.csv --from hippocampus-3d -o hippocampus-site2 [-c overrides.yaml]
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser("train", help="train (or fine-tune) a segmentation model on a cohort and write a "
                                                 "model bundle",
                                   description="Train a Keras segmentation model on a cohort (image + mask columns) "
                                               "and write a bundle: model.keras, model_card.json, MODEL_CARD.md. "
                                               "With --from, fine-tune an existing bundle instead: its weights, "
                                               "labels, architecture, preprocessing and inference settings are kept; "
                                               "-c may then only set training settings (default: a tenth of the "
                                               "parent's learning rate, epochs and time limit).",
                                   epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cohort", help="cohort manifest (CSV or Parquet) with case_id, image and mask columns")
    parser.add_argument("-c", "--config", default=None,
                        help="training configuration (YAML); required unless --from is given, then optional and "
                             "limited to its 'training' section")
    parser.add_argument("--from", dest="from_model", default=None, metavar="BUNDLE",
                        help="fine-tune this bundle (a folder, or a name such as hippocampus-3d from radiobio models)")
    parser.add_argument("-o", "--out", required=True, help="bundle folder to write")
    parser.add_argument("--image-column", default="image", help="column holding image paths (default: image)")
    parser.add_argument("--mask-column", default="mask", help="column holding label maps (default: mask)")
    parser.add_argument("--intended-use", default=None,
                        help="what the model may be used for, recorded in its card and printed by radiobio segment "
                             "(e.g. 'research use on adult T1 MRI; not for clinical use'; a fine-tune defaults to "
                             "its parent's)")
    parser.add_argument("--no-qc-calibration", action="store_true",
                        help="skip calibrating the quality score on the stress-tested validation cases (the card "
                             "still gets the reference statistics)")
    add_quiet(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train and write the bundle; exit code 2 on a usage error (checked before TensorFlow loads)."""
    from radiobio.errors import RadiobioError, SettingsError
    from radiobio.segmentation.config import as_config

    try:  # a bad config, a missing parent or a bad override fails before TensorFlow loads
        if args.from_model is not None:
            from radiobio.segmentation.bundle import read_bundle
            from radiobio.segmentation.finetune import finetune_config

            parent = read_bundle(args.from_model)
            config = finetune_config(parent, args.config)
        elif args.config is None:
            raise SettingsError("-c/--config CONFIG.yaml is required to train a new model (or give --from BUNDLE "
                                "to fine-tune an existing one)")
        else:
            parent = None
            config = as_config(args.config)
    except RadiobioError as exc:
        return fail("train", exc)
    from radiobio.segmentation.training import train

    settings = [f"{k}={os.environ[k]}" for k in ("KERAS_BACKEND", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
                if k in os.environ]
    command = " ".join([*settings, "radiobio", *(shlex.quote(a) for a in args.argv)])
    try:
        path = train(args.cohort, config=config, from_model=parent, out_dir=args.out, image_column=args.image_column,
                     mask_column=args.mask_column, progress=not args.quiet, command=command,
                     intended_use=args.intended_use, qc_calibration=not args.no_qc_calibration)
    except RadiobioError as exc:
        return fail("train", exc)
    print(f"model bundle written to {path}")
    return 0
