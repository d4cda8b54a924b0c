"""How fast ShapesWorld makes data, on one core.

Reports rendered 32x32 scenes per second (target: >= 5,000/s), as a ratio to the target and to drawing the same
scenes one by one with PIL's ImageDraw (no anti-aliasing), measured in the same run.

    python benchmarks/shapesworld.py [--n 20000] [--image-size 32]
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: set before numpy and torch load their thread pools

import argparse
import time

from PIL import Image, ImageDraw

from vitlib.data import ShapesWorld
from vitlib.data.render import BACKGROUND, GRID, HALF_EXTENT

TARGET = 5_000


def best_rate(fn, n: int, repeats: int = 3) -> float:
    """Items per second of the fastest of a few runs (the least disturbed by the rest of the machine)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n / min(times)


def pil_render(world: ShapesWorld, scene) -> Image.Image:
    """The reference: draw each object with PIL, as a first attempt at this generator would."""
    image = Image.new("RGB", (world.image_size, world.image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for o in scene.objects:
        cx, cy = world.center(o)
        r = HALF_EXTENT[o.size] * world.image_size / GRID
        box = (cx - r, cy - r, cx + r, cy + r)
        fill = world.colors[o.color]
        if o.shape == "circle":
            draw.ellipse(box, fill=fill)
        elif o.shape == "square":
            draw.rectangle((cx - 0.85 * r, cy - 0.85 * r, cx + 0.85 * r, cy + 0.85 * r), fill=fill)
        elif o.shape == "triangle":
            draw.polygon([(cx, cy - r), (cx - 0.95 * r, cy + 0.8 * r), (cx + 0.95 * r, cy + 0.8 * r)], fill=fill)
        elif o.shape == "diamond":
            draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
        else:
            t = 0.34 * r
            draw.rectangle((cx - t, cy - r, cx + t, cy + r), fill=fill)
            draw.rectangle((cx - r, cy - t, cx + r, cy + t), fill=fill)
    return image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()
    world = ShapesWorld(image_size=args.image_size, seed=0)
    scenes = world.scenes(args.n)

    batch = best_rate(lambda: world.render_batch(scenes), args.n)
    single = best_rate(lambda: [world.render(s) for s in scenes[:5000]], 5000)
    sample = best_rate(lambda: world.scenes(args.n), args.n)
    pil = best_rate(lambda: [pil_render(world, s) for s in scenes[:5000]], 5000)

    print(f"ShapesWorld, {args.image_size}x{args.image_size}, one core, {args.n} scenes")
    print(f"  render_batch       {batch:10,.0f} scenes/s   {batch / TARGET:5.1f}x target   {batch / pil:5.1f}x PIL")
    print(f"  render (one by one){single:10,.0f} scenes/s   {single / TARGET:5.1f}x target   {single / pil:5.1f}x PIL")
    print(f"  PIL ImageDraw      {pil:10,.0f} scenes/s   (reference, no anti-aliasing)")
    print(f"  sample scenes      {sample:10,.0f} scenes/s")
    print("PASS" if batch >= TARGET else "BELOW TARGET", f"(target {TARGET:,} rendered scenes/s)")


if __name__ == "__main__":
    main()
