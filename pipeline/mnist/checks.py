"""The rules between the keys of the mnist study's config (and of its figure and claim settings)
that the schema cannot express: the convolution's size, the parts, the drift figure's epoch, and
the part and variant claim 7 is judged on. Run by `pipeline.config.validate` before any job;
each raises `UserError` with one sentence."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.config import fail, member, mnist_parts, ordered


def check(config: Mapping) -> None:
    m = config["mnist"]
    conv = m["conv"]
    side = 28 + 2 * conv["padding"] - conv["size"] + 1
    if side < conv["pool"]:
        fail(
            f"Config key mnist.conv: the convolution (size {conv['size']}, padding {conv['padding']}) "
            f"leaves {side}x{side} pixels, fewer than one max-pool window of {conv['pool']}; "
            "lower mnist.conv.pool or size."
        )
    ordered("mnist.init.bias_low/bias_high", m["init"]["bias_low"], m["init"]["bias_high"])
    parts = mnist_parts(config)
    if m["enabled"] and not parts:
        fail(
            "Config key mnist.parts sets every part to null, so nothing is run; give a part or set "
            "mnist.enabled to false."
        )
    drift_epoch = config["figures"]["mnist"]["drift_epoch"]
    for name, part in parts.items():
        epochs = part.get("epochs", m["epochs"])
        if drift_epoch > epochs:
            fail(
                f"Config key figures.mnist.drift_epoch = {drift_epoch} is after the last epoch of "
                f"the MNIST part {name} ({epochs})."
            )
    parts = mnist_parts(config)
    if not parts:
        return
    th = config["report"]["claims"]
    member("report.claims.mnist_part", th["mnist_part"], list(parts), "an MNIST part that is run")
    part = th["mnist_part"]
    what = f"a variant of the MNIST part {part}"
    member("report.claims.mnist_variant", th["mnist_variant"], parts[part]["variants"], what)
