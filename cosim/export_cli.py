"""``cosim export OUTPUT.h5 [--nwb OUT.nwb] [--tvb OUT_DIR]`` (registered by :mod:`cosim.cli`;
the formats: :mod:`cosim.export`)."""

from __future__ import annotations

import argparse

from .errors import CosimError


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", help="a cosim output .h5 file")
    p.add_argument("--nwb", metavar="OUT.nwb", help="write an NWB file (needs pynwb)")
    p.add_argument("--tvb", metavar="OUT_DIR",
                   help="write TVB H5 files (Connectivity.h5, TimeSeriesRegion_*.h5)")
    p.add_argument("--overwrite", action="store_true", help="replace existing export files")


def export_main(args) -> int:
    from .export import export_nwb, export_tvb

    if not args.nwb and not args.tvb:
        raise CosimError("nothing to export: give --nwb OUT.nwb and/or --tvb OUT_DIR",
                         file=args.output)
    if args.nwb:
        print(f"wrote {export_nwb(args.output, args.nwb, overwrite=args.overwrite)}")
    if args.tvb:
        for p in export_tvb(args.output, args.tvb, overwrite=args.overwrite):
            print(f"wrote {p}")
    return 0
