"""``radiobio models``: list the model bundles that ``-m NAME`` finds, and where radiobio looks for them."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the model bundles usable by name",
                                   description="List the model bundles found on the model search path: the folders "
                                               "of RADIOBIO_MODEL_PATH, then the bundles installed with radiobio, "
                                               "then models/ of a source checkout. Any listed name can be given to "
                                               "-m of radiobio segment.",
                                   epilog="example:\n  RADIOBIO_MODEL_PATH=/shared/models radiobio models\n"
                                          "  radiobio segment cohort.csv -m hippocampus-3d -o masks/\n",
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--search-path", action="store_true", help="print the folders searched, in order, and stop")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiobio.segmentation.catalogue import list_bundles, model_search_path

    if args.search_path:
        for folder in model_search_path():
            print(folder)
        return 0
    table = list_bundles()
    if table.empty:
        print("no model bundles found; searched: " + ", ".join(str(p) for p in model_search_path()))
        return 0
    width = max(len(n) for n in table["name"])
    for row in table.itertuples(index=False):
        flag = "   [DEMO: synthetic data only]" if row.demo else ""
        print(f"{row.name:<{width}}  {row.architecture or '?':<8} labels {row.labels or '-'}{flag}")
        if row.use:
            print(f"{'':<{width}}  use:  {row.use}")
        if row.description.startswith("unusable card"):
            print(f"{'':<{width}}  {row.description}")
        print(f"{'':<{width}}  path: {row.path}")
    return 0
