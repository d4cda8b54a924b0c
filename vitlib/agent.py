"""ShapesGrid: carry ShapesWorld objects where an instruction says, behind the gymnasium Env API (chapter 12).

The state s is a ShapesWorld scene (2-3 objects on the 3x3 grid), an agent standing on one cell (a white frame; a
grey frame while it holds an object, which it carries in its cell) and an instruction in the world's words:

    place the blue square at the top left                   the object ends, put down, in that cell
    place the blue square to the left of the red circle     ... in the cell next to the other object on that side

Actions: 0 up, 1 down, 2 left, 3 right, 4 pick (the object under the agent), 5 drop (into the agent's cell).
A move off the grid, a pick with a full hand or on an empty cell, a drop with an empty hand, and a move into an
occupied cell while holding all leave the state as it was. Reward R = 1 when the instruction holds after a drop (the
episode terminates), STEP_COST otherwise, so that the return prefers the shortest way; ``max_steps`` truncates.

Held-out compositions: every part of a held-out instruction is seen in training, not the combination. ``split``
"train" never draws one; "heldout" draws only them. ``expert_action`` is a shortest-path teacher for any state.
"""

from __future__ import annotations

import string
from collections import deque
from dataclasses import dataclass, replace

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .checks import check_int, check_one_of, describe
from .data import ShapesWorld
from .data.language import POSITIONS, PREPOSITION, RELATIONS, position_name
from .data.render import GRID
from .data.scene import Obj, Scene

__all__ = ["ShapesGridEnv", "Task", "ACTIONS", "SPLITS", "ENV_ID", "HELDOUT", "expert_action", "parse", "MAX_STEPS"]

ENV_ID = "vitlib/ShapesGrid-v0"
ACTIONS = ("up", "down", "left", "right", "pick", "drop")
MOVES = {0: (-1, 0), 1: (1, 0), 2: (0, -1), 3: (0, 1)}                   # (d_row, d_col)
SIDE = dict(zip(RELATIONS, [(0, -1), (0, 1), (-1, 0), (1, 0)]))          # the cell next to the reference, that side
SPLITS = ("train", "heldout", "all")
STEP_COST = -0.01
MAX_STEPS = 24
MAX_INSTRUCTION = 64                                                     # characters; the longest is 61
CHARSET = frozenset(string.ascii_lowercase + " ")
# (moved colour, destination place) and (moved shape, relation): seen apart in training, together only when held out
HELDOUT = frozenset({("red", "top left"), ("green", "center"), ("blue", "bottom right"), ("yellow", "right"),
                     ("circle", "above"), ("square", "to the left of"), ("triangle", "below")})
FRAME = {False: (255, 255, 255), True: (140, 140, 140)}                 # the agent's frame: empty hand, holding


@dataclass(frozen=True)
class Task:
    """What to do: put the ``color`` ``shape`` at cell ``target`` (a place) or ``relation`` the ``reference``."""

    color: str
    shape: str
    place: tuple[int, int] | None = None
    relation: str | None = None
    reference: tuple[str, str] | None = None

    @property
    def text(self) -> str:
        obj = f"place the {self.color} {self.shape}"
        if self.place is not None:
            name = position_name(self.place)
            return f"{obj} {PREPOSITION[name]} the {name}"
        return f"{obj} {self.relation} the {self.reference[0]} {self.reference[1]}"

    @property
    def composition(self) -> tuple[str, str]:
        return (self.color, position_name(self.place)) if self.place is not None else (self.shape, self.relation)


def parse(text: str) -> Task:
    """The Task an instruction's words name (the inverse of ``Task.text``); ValueError for other words."""
    if not isinstance(text, str):
        raise TypeError(f"an instruction must be a str, got {describe(text)}")
    words = text.split()
    if len(words) < 6 or words[:2] != ["place", "the"]:
        raise ValueError(f"expected 'place the <color> <shape> ...', got {text!r}")
    color, shape, rest = words[2], words[3], " ".join(words[4:])
    for relation in RELATIONS:
        if rest.startswith(relation + " the ") and len(rest.split()) == len(relation.split()) + 3:
            return Task(color, shape, relation=relation, reference=tuple(rest.split()[-2:]))
    for r, row in enumerate(POSITIONS):
        for c, name in enumerate(row):
            if rest.split(maxsplit=2)[1:] == ["the", name]:
                return Task(color, shape, place=(r, c))
    raise ValueError(f"expected a place ('at the top left', ...) or a relation ({', '.join(RELATIONS)}) after the "
                     f"object, got {rest!r}")


class ShapesGridEnv(gym.Env):
    """The ShapesGrid environment. obs = {"image": uint8 (H, W, 3), "instruction": str}; six discrete actions.

    ``world``: the ShapesWorld whose colours, shapes and renderer it uses (default: 24x24, the course CLIP's size);
    objects are its ``pairs_seen``, never a held-out colour+shape pair. ``split``: which instructions (SPLITS)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, world: ShapesWorld | None = None, max_steps: int = MAX_STEPS, render_mode: str | None = None,
                 split: str = "train"):
        world = ShapesWorld(image_size=24, max_objects=3) if world is None else world
        if not isinstance(world, ShapesWorld):
            raise TypeError(f"world must be a ShapesWorld, got {describe(world)}")
        check_int(max_steps, "max_steps", minimum=1, maximum=10_000)
        if render_mode is not None:
            check_one_of(render_mode, "render_mode", self.metadata["render_modes"])
        self.world, self.max_steps, self.render_mode = world, max_steps, render_mode
        check_one_of(split, "split", SPLITS)
        self.split = split
        size = world.image_size
        self.observation_space = spaces.Dict({
            "image": spaces.Box(0, 255, (size, size, 3), np.uint8),
            "instruction": spaces.Text(MAX_INSTRUCTION, min_length=1, charset="".join(sorted(CHARSET)))})
        self.action_space = spaces.Discrete(len(ACTIONS))
        self.objects: dict[tuple[int, int], Obj] = {}
        self.agent, self.held, self.task, self.steps = (0, 0), None, None, 0

    # ----- the state ----------------------------------------------------------------------------------------------
    def _draw_task(self) -> None:
        """A scene, an agent cell and a task of ``split`` that is not yet done and that the expert can finish."""
        rng, w = self.np_random, self.world
        while True:
            k = int(rng.integers(2, 4))
            cells = [divmod(int(i), GRID) for i in rng.choice(GRID * GRID, k, replace=False)]
            pairs = [w.pairs_seen[int(i)] for i in rng.choice(len(w.pairs_seen), k, replace=False)]
            self.objects = {cell: Obj(s, c, w.sizes[int(rng.integers(len(w.sizes)))], cell)
                            for cell, (c, s) in zip(cells, pairs)}
            self.agent, self.held = divmod(int(rng.integers(GRID * GRID)), GRID), None
            moved, other = self.objects[cells[0]], self.objects[cells[1]]
            if rng.random() < 0.5:
                task = Task(moved.color, moved.shape, place=divmod(int(rng.integers(GRID * GRID)), GRID))
            else:
                task = Task(moved.color, moved.shape, relation=RELATIONS[int(rng.integers(4))],
                            reference=(other.color, other.shape))
            held_out = task.composition in HELDOUT
            if (self.split == "all" or held_out == (self.split == "heldout")) and not self.done(task) and \
                    self._solvable(task):
                self.task = task
                return

    def _find(self, color: str, shape: str) -> tuple[int, int] | None:
        if self.held is not None and (self.held.color, self.held.shape) == (color, shape):
            return self.agent
        return next((cell for cell, o in self.objects.items() if (o.color, o.shape) == (color, shape)), None)

    def target(self, task: Task | None = None) -> tuple[int, int] | None:
        """The cell the task's object must end in (None if it falls off the grid or the reference is gone)."""
        task = self.task if task is None else task
        if task.place is not None:
            return task.place
        ref = self._find(*task.reference)
        if ref is None or (self.held is not None and ref == self.agent):
            return None                                                  # the reference is in the hand
        r, c = ref[0] + SIDE[task.relation][0], ref[1] + SIDE[task.relation][1]
        return (r, c) if 0 <= r < GRID and 0 <= c < GRID else None

    def done(self, task: Task | None = None) -> bool:
        """The instruction holds: the object lies (not in the hand) in its target cell."""
        task = self.task if task is None else task
        cell = self.target(task)
        return cell is not None and cell in self.objects and \
            (self.objects[cell].color, self.objects[cell].shape) == (task.color, task.shape)

    def _solvable(self, task: Task) -> bool:
        saved = (dict(self.objects), self.agent, self.held, self.task)
        self.task, solved = task, False
        for _ in range(4 * GRID * GRID):
            self._apply(expert_action(self))
            if self.done():
                solved = True
                break
        self.objects, self.agent, self.held, self.task = saved
        return solved

    def _apply(self, action: int) -> None:
        if action in MOVES:
            r, c = self.agent[0] + MOVES[action][0], self.agent[1] + MOVES[action][1]
            if 0 <= r < GRID and 0 <= c < GRID and not (self.held is not None and (r, c) in self.objects):
                self.agent = (r, c)
        elif action == 4 and self.held is None and self.agent in self.objects:
            self.held = self.objects.pop(self.agent)
        elif action == 5 and self.held is not None:
            self.objects[self.agent] = replace(self.held, position=self.agent)
            self.held = None

    # ----- the gymnasium API --------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._draw_task()
        self.steps = 0
        return self._obs(), self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in 0..{len(ACTIONS) - 1} ({', '.join(ACTIONS)}), got {action!r}")
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        self._apply(int(action))
        self.steps += 1
        success = int(action) == 5 and self.done()
        truncated = not success and self.steps >= self.max_steps
        return self._obs(), 1.0 if success else STEP_COST, success, truncated, self._info() | {"success": success}

    def render(self) -> np.ndarray | None:
        return self._image() if self.render_mode == "rgb_array" else None

    def _image(self) -> np.ndarray:
        objects = list(self.objects.values())
        if self.held is not None:
            objects.append(replace(self.held, position=self.agent))
        image = self.world.render(Scene(tuple(objects)))
        cell = self.world.image_size // GRID
        y0, x0 = self.agent[0] * cell, self.agent[1] * cell
        t = max(1, cell // 8)                                            # the frame's width in pixels
        frame = np.zeros((cell, cell), bool)
        frame[:t], frame[-t:], frame[:, :t], frame[:, -t:] = True, True, True, True
        image[y0:y0 + cell, x0:x0 + cell][frame] = FRAME[self.held is not None]
        return image

    def _obs(self) -> dict:
        return {"image": self._image(), "instruction": self.task.text}

    def _info(self) -> dict:
        return {"task": self.task, "expert_action": expert_action(self)}


def _path(start, goal, blocked) -> list[tuple[int, int]] | None:
    """Breadth-first shortest path of cells from start to goal avoiding ``blocked`` (None if there is none)."""
    parent, queue = {start: None}, deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            path = []
            while cell is not None:
                path.append(cell)
                cell = parent[cell]
            return path[::-1]
        for dr, dc in MOVES.values():
            nxt = (cell[0] + dr, cell[1] + dc)
            if 0 <= nxt[0] < GRID and 0 <= nxt[1] < GRID and nxt not in blocked and nxt not in parent:
                parent[nxt] = cell
                queue.append(nxt)
    return None


def _toward(env: ShapesGridEnv, goal, blocked=frozenset()) -> int:
    """The move that starts a shortest path to ``goal`` (ignoring ``blocked`` when no path avoids it)."""
    path = _path(env.agent, goal, blocked) or _path(env.agent, goal, frozenset())
    step = (path[1][0] - path[0][0], path[1][1] - path[0][1])
    return next(a for a, d in MOVES.items() if d == step)


def expert_action(env: ShapesGridEnv) -> int:
    """The shortest-path teacher's action in the env's current state: drop anything but the task's object; walk to
    the object and pick it; carry it around the other objects to its target; drop it. Defined in every state, so it
    can label the states a learner visits (DAgger)."""
    if not isinstance(env, ShapesGridEnv):
        raise TypeError(f"expert_action needs a ShapesGridEnv, got {describe(env)}")
    task = env.task
    if task is None:
        raise RuntimeError("the env has no task: call reset() first")
    mine = env.held is not None and (env.held.color, env.held.shape) == (task.color, task.shape)
    if env.held is not None and not mine:
        return 5
    if not mine:
        return 4 if env._find(task.color, task.shape) == env.agent else _toward(env, env._find(task.color, task.shape))
    goal = env.target()
    if goal is None or goal == env.agent:
        return 5
    return _toward(env, goal, blocked=frozenset(env.objects))


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="vitlib.agent:ShapesGridEnv", max_episode_steps=MAX_STEPS)
