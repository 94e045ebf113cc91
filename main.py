"""Train, validate, test and multigrid-train a video model from a YAML config.

    python main.py -c configs/recognition/slowfast/slowfast.yaml --validate
    python main.py --test -c configs/recognition/slowfast/slowfast.yaml -w SlowFast.pdparams
    python -m paddle.distributed.launch --gpus 0,1,2,3 main.py -c CFG --validate
    python main.py -c CFG -p "batch_range=[10,20];state=CPU;profile_path=model.profile"
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

# Set in every process that paddle.distributed.launch starts.
LAUNCHER_ENV = "PADDLE_TRAINER_ENDPOINTS"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser("PaddleVideo SlowFast train/test script")
    parser.add_argument("-c", "--config", required=True, help="config file path")
    parser.add_argument("-o", "--override", action="append", default=[],
                        help="override a config option, e.g. -o DATASET.batch_size=4")
    parser.add_argument("--test", action="store_true", help="test the model given by -w")
    parser.add_argument("--train_dali", action="store_true",
                        help="PaddleVideo's DALI reader (TSN only): refused here")
    parser.add_argument("--multigrid", action="store_true", help="train with multigrid")
    parser.add_argument("-w", "--weights", type=str,
                        help="weights to fine-tune from (training) or to test (--test)")
    parser.add_argument("--validate", action="store_true", help="validate while training")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed (wins over -o seed=N; default: the config's seed, "
                             "else 1234)")
    parser.add_argument("--amp", action="store_true", help="mixed-precision training")
    parser.add_argument("--amp_level", type=str, default=None, choices=["O1", "O2"],
                        help="mixed-precision level")
    parser.add_argument("--max_iters", type=int, default=None,
                        help="at most this many iterations per epoch (smoke runs)")
    parser.add_argument("-p", "--profiler_options", type=str, default=None,
                        help="profile training iterations, e.g. \"batch_range=[10,20];"
                             "state=CPU;tracer_option=Default;profile_path=model.profile\"")
    parser.add_argument("--fleet", action="store_true",
                        help="train with paddle fleet (under paddle.distributed.launch)")
    return parser.parse_args(argv)


def select_device(requested: Optional[str]) -> str:
    """GPU when Paddle was built with CUDA and one is visible, else CPU; ``device`` overrides."""
    import paddle

    if requested:
        device = str(requested).lower()
    elif paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        device = "gpu"
    else:
        device = "cpu"
    if device.startswith("gpu") and not paddle.is_compiled_with_cuda():
        raise SystemExit(f"device={requested}: this Paddle build has no CUDA support; install "
                         f"paddlepaddle-gpu or use -o device=cpu")
    if device.startswith("gpu"):
        from paddle.distributed import ParallelEnv

        device = f"gpu:{ParallelEnv().dev_id}"
    paddle.set_device(device)
    return device


def check_flags(args: argparse.Namespace) -> Optional[str]:
    """The one-line reason the flags cannot be run together, or None; checked before work."""
    if args.train_dali:
        return ("--train_dali: PaddleVideo's DALI reader serves TSN only and is not available "
                "for SlowFast; train without --train_dali")
    if args.fleet and LAUNCHER_ENV not in os.environ:
        return ("--fleet needs the processes of a launcher: python -m paddle.distributed.launch "
                "--nproc_per_node N main.py --fleet ... (or --gpus 0,1,... on a GPU machine)")
    if args.fleet and os.environ.get("PADDLE_TRAINERS_NUM") == "1":
        # paddle.distributed.fleet.distributed_model fails on a single process (Paddle 3.3)
        return ("--fleet needs 2 or more processes (--nproc_per_node 2 or more); with one "
                "process, train without --fleet")
    if args.fleet and args.multigrid:
        return ("--fleet is not supported with --multigrid (its phases rebuild the model); "
                "launch with paddle.distributed.launch without --fleet")
    if args.profiler_options and args.test:
        return "-p/--profiler_options profiles training iterations; it does not apply to --test"
    if args.profiler_options:
        from paddlevideo.tasks.profiler import ProfilerOptions, ProfilerOptionsError

        try:
            ProfilerOptions.parse(args.profiler_options)
        except ProfilerOptionsError as err:
            return f"-p/--profiler_options: {err}"
    return None


def run_task(args: argparse.Namespace, cfg) -> None:
    """--test, or training (plain or --multigrid), as the flags ask; ``cfg`` is checked."""
    if args.test:
        from paddlevideo.tasks import test_model
        from paddlevideo.tasks.options import TestOptions

        options = TestOptions.from_args(args)
        if args.seed is not None:
            cfg["seed"] = args.seed  # the flag wins over -o seed=N and the file
        test_model(cfg, weights=options.weights, parallel=options.parallel)
    else:
        from paddlevideo.tasks.options import TrainOptions
        from paddlevideo.tasks.train import train

        train(cfg, TrainOptions.from_args(args))


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    problem = check_flags(args)
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 2
    from paddlevideo.loader import BadVideoError, VideoDecodeError
    from paddlevideo.loader.dataset.list_file import ListFileError
    from paddlevideo.tasks.same_lists import ListMismatchError
    from paddlevideo.tasks.train import TrainingDivergedError
    from paddlevideo.utils.entry_point import run_entry_point

    # a config mistake: one line, exit 2; a stop on SIGTERM/SIGINT (a resumable checkpoint was
    # written): 128 + N; every other failure a user can meet: one line (paddlevideo.utils.
    # entry_point), its traceback in train.log
    return run_entry_point(lambda: run(args), {
        ListFileError: 2, ListMismatchError: 2, VideoDecodeError: 1, BadVideoError: 1,
        TrainingDivergedError: 1})


def run(args: argparse.Namespace) -> int:
    from paddlevideo.utils.config import get_config

    cfg = get_config(args.config, overrides=args.override)  # read and checked, once
    from paddlevideo.loader.num_classes import resolve_num_classes

    print(resolve_num_classes(cfg, args.override, args.config)[1])  # label file, head, metric
    select_device(cfg["device"])
    run_task(args, cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
