"""``vocli demo``: the whole pipeline on generated data, printing each step's command (over ``vocli.demo``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from vocli.cli.common import JSON_OPTION, emit_json, err_console


def demo(
    out: Path = typer.Option(Path("vocli-demo"), "--out", help="Folder for the data and every output."),
    minutes: float = typer.Option(5.0, "--minutes", min=0.05,
                                  help="Time budget for the whole demo; training gets what the other steps leave."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N."),
    images: int = typer.Option(1000, "--images", min=10,
                               help="Shapes images to generate (50 % train, 10 % val, 40 % test)."),
    img_size: int = typer.Option(160, "--img-size", help="Network input size (multiple of 32)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the data, anchors and training."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Fetch, convert, cluster anchors, train, evaluate and detect on the generated shapes set.

    \b
    Offline, in a few minutes on a laptop CPU. Each step runs the same library
    call as the command printed before it ("$ vocli ..."), so you can re-run
    or change any step by hand, or run the same steps on real VOC. Ends with
    the mAP, the time of each step and where everything is: YOLO labels and
    .data, SSD targets, the cfg with fitted anchors, the weights, PR curves
    (eval/pr_curves.png) and annotated test images (detect/).

    \b
    Example: vocli demo
    Example: vocli demo --out /tmp/demo --minutes 2 --images 300
    """
    from vocli.cli.train import _epoch_progress
    from vocli.demo import demo as run_demo

    console = err_console()

    def announce(info) -> None:
        if info.note:
            console.print(f"# {info.note}", soft_wrap=True, markup=False, highlight=False, style="dim")
        console.print("$ " + info.command, soft_wrap=True, markup=False, highlight=False, style="bold cyan")

    def finished(step, result) -> None:
        if json_out:
            return
        if step.name == "evaluate":
            from vocli.cli.evaluate import render

            render(result)
        console.print(f"  done in {step.seconds:.1f} s: {step.summary}", soft_wrap=True, markup=False,
                      highlight=False, style="green")

    with _epoch_progress(enabled=not json_out) as report:  # the epoch lines `vocli train` shows
        result = run_demo(out=out, minutes=minutes, device=device, images=images, img_size=img_size, seed=seed,
                          on_step=announce, on_done=finished, train_progress=report)
    if json_out:
        emit_json(result)
    else:
        render(result)


def render(result) -> None:
    """Summary on stderr: steps with their times, mAP, where each artefact is (paths whole, never cut)."""
    from vocli.cli.common import Col, print_table, short_path

    console = err_console()
    print_table(f"vocli demo: {result.seconds / 60:.1f} of {result.budget_seconds / 60:g} minutes",
                [Col("step", "key"), Col("seconds", "num"), Col("result")],
                [(step.name, f"{step.seconds:.1f}", step.summary) for step in result.steps])
    paths = result.paths
    out = Path(result.out).resolve()

    def here(value) -> str:
        return short_path(Path(value).resolve(), out)

    lines = [
        ("dataset (VOC layout)", here(paths["dataset"])),
        ("YOLO labels", here(paths["labels"])),
        ("darknet .data", here(paths["data_file"])),
        ("SSD targets", ", ".join(here(p) for p in paths["ssd"])),
        ("cfg with fitted anchors", here(paths["cfg"])),
        ("trained weights", here(paths["weights"])),
        ("training curves", here(paths["train_curves"])),
        ("PR curves", here(paths["pr_curves"])),
        ("AP per class", here(paths["ap_per_class"])),
        ("annotated test images", f"{here(paths['detect'])}/ ({len(paths['detect_images'])} images)"),
    ]
    console.print(f"[bold]where everything is[/], under {escape(str(out))}", soft_wrap=True, highlight=False)
    for label, value in lines:
        console.print(escape(f"  {label}: {value}"), soft_wrap=True, highlight=False)
    stopped = "time limit" if result.train_stopped == "time_limit" else "all epochs done"
    console.print(f"[bold]mAP@0.5 ({result.metric}) = {result.map:.4f}[/] on the test split after "
                  f"{result.epochs_run} epoch(s) of training at {result.img_size} px ({stopped})", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
