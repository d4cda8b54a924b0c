"""vitlib.viz.interactive: the figures are self-contained HTML (nothing fetched, no module loader), their JSON payload
parses and holds the data given, images round-trip through the embedded PNGs, element ids never clash between two
figures, text is escaped, the size stays small, and bad input fails with a message naming what was expected and
what came. With Chromium installed, a slow test loads a page of figures and drives their controls."""

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import IPython.display
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from vitlib.data import ShapesWorld
from vitlib.viz import attention_html, display_html, itm_html, retrieval_html

TOKENS = ["a", "red", "circle", "."]
MAPS = {"layer 1": torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(1)).softmax(-1),
        "layer 2": torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(2)).softmax(-1)}  # (H, T, T)
RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)            # (N, H, W, 3) uint8
SCORES = torch.rand(3, 6, generator=torch.Generator().manual_seed(3))  # (Q, N)
QUERIES = ["a red circle", "a blue square", "a green triangle"]
CAPTIONS = ["a red circle", "a blue square on the left"]
ITM = torch.tensor([[0.9, 0.2], [0.1, 0.7]])                           # (C, N)
CROSS = [torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(4)).softmax(-1),  # (N, T_c, P)
         torch.rand(2, 6, 4, generator=torch.Generator().manual_seed(5)).softmax(-1)]
NAN = MAPS["layer 1"].clone()
NAN[0, 0, 0] = float("nan")


class Parts(HTMLParser):
    """Every element id, every attribute that could fetch something, and the text of each <script>."""

    def __init__(self, text):
        super().__init__()
        self.ids, self.links, self.scripts, self._script = [], [], [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids += [attrs["id"]] if "id" in attrs else []
        self.links += [v for k, v in attrs.items() if k in ("src", "href")]
        if tag == "script":
            self._script = [attrs.get("type"), ""]

    def handle_data(self, data):
        if self._script is not None:
            self._script[1] += data

    def handle_endtag(self, tag):
        if tag == "script":
            self.scripts.append(tuple(self._script))
            self._script = None


def payload(text):
    (data,) = [body for kind, body in Parts(text).scripts if kind == "application/json"]
    return json.loads(data)


def pixels(b64):
    return (plt.imread(io.BytesIO(base64.b64decode(b64)), format="png") * 255).round().astype(np.uint8)


def figures():
    return [attention_html(MAPS, TOKENS, highlight=[1], layer="layer 2", head=2, query=1),
            retrieval_html(QUERIES, IMAGES, SCORES, k=2), itm_html(CAPTIONS, IMAGES[:2], ITM, CROSS)]


def test_self_contained_and_ids_unique_across_figures():
    pages = figures() + figures()
    ids = [i for page in pages for i in Parts(page).ids]
    assert len(ids) == len(set(ids)), "ids clash between figures on one page"
    for page in pages:
        parts = Parts(page)
        assert all(link.startswith("data:image/png;base64,") for link in parts.links)
        assert [kind for kind, _ in parts.scripts] == ["application/json", None], "one payload, one plain script"
        code = parts.scripts[1][1]
        assert not re.search(r"https?://|\brequire\(|\bimport\b|\bdefine\(|\bfetch\(", code + page.split("<script")[0])
        assert all(i.startswith(parts.ids[0]) for i in parts.ids), "every id starts with the figure's"
    assert pages[0].split('"')[3] != pages[3].split('"')[3], "the same data twice: two ids"


def test_attention_payload_holds_the_maps():
    data = payload(figures()[0])
    assert data["kind"] == "attention" and data["layers"] == ["layer 1", "layer 2"] and data["tokens"] == TOKENS
    assert (data["layer"], data["head"], data["query"], data["highlight"]) == (1, 2, 1, [1])
    for got, want in zip(data["maps"], MAPS.values()):
        np.testing.assert_allclose(np.array(got) / 1000, want.numpy(), atol=5e-4)  # sent in thousandths


def test_retrieval_payload_holds_the_top_k_and_its_images():
    data = payload(figures()[1])
    top = SCORES.topk(2, dim=1)
    assert data["top"] == top.indices.tolist()
    np.testing.assert_allclose(data["scores"], top.values.numpy(), atol=5e-4)
    assert sorted(map(int, data["images"])) == sorted(set(top.indices.flatten().tolist())), "only images shown"
    for n, b64 in data["images"].items():
        np.testing.assert_array_equal(pixels(b64), IMAGES[int(n)])


def test_itm_payload_and_defaults():
    data = payload(figures()[2])
    assert data["tokens"] == [c.split() for c in CAPTIONS] and data["grid"] == 2
    np.testing.assert_allclose(data["scores"], ITM.numpy(), atol=5e-4)
    for got, want in zip(data["attention"], CROSS):
        np.testing.assert_allclose(np.array(got) / 1000, want.numpy(), atol=5e-4)
    one = payload(itm_html(["a b"], torch.tensor(IMAGES[:1]).permute(0, 3, 1, 2) / 255.0, torch.tensor([0.5]),
                           torch.full((1, 2, 9), 1 / 9), tokens=[["a", "b"]]))  # float (N, 3, H, W), one image
    assert one["scores"] == [[0.5]] and one["attention"] == [[[[111] * 9] * 2]] and one["grid"] == 3
    np.testing.assert_array_equal(pixels(one["images"][0]), IMAGES[0])


def test_text_is_escaped():
    text = attention_html({"<i>": torch.full((1, 2, 2), 0.5)}, ["</script><b>&", "x"], title="<h1>hi</h1>")
    assert "</script><b>" not in text and "<h1>" not in text and "&lt;h1&gt;" in text
    data = payload(text)
    assert data["tokens"][0] == "</script><b>&" and data["layers"] == ["<i>"]


def test_realistic_inputs_stay_small():
    world = ShapesWorld(image_size=32, seed=0)
    images = world.render_batch(world.scenes(100))  # (100, 32, 32, 3)
    queries = [f"query {i}" for i in range(100)]
    scores = torch.eye(100)  # (Q, N): every image is somebody's top 1, so all 100 are embedded
    assert len(retrieval_html(queries, images, scores)) < 100_000
    noise = RNG.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8)  # the worst case for PNG: incompressible
    assert len(retrieval_html(queries, noise, scores)) < 500_000
    cross = [torch.rand(4, 10, 64).softmax(-1) for _ in range(20)]  # 20 captions, 4 images, 10 words, 8x8 patches
    assert len(itm_html([f"w{i} " * 10 for i in range(20)], images[:4], torch.rand(20, 4), cross)) < 200_000


def test_display_html(monkeypatch):
    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    display_html(figures()[0])
    assert isinstance(shown[0], IPython.display.HTML) and "vl-attention" in shown[0].data


BAD_INPUT = [
    (lambda: attention_html({}, TOKENS), ValueError, r"expected maps with at least one layer"),
    (lambda: attention_html(MAPS, TOKENS[:3]), ValueError,
     r"expected maps\['layer 1'\] of shape \(heads, 3, 3\) for 3 tokens, got \(2, 4, 4\)"),
    (lambda: attention_html(MAPS, "a red circle ."), TypeError, r"expected tokens as a list of str, got str"),
    (lambda: attention_html(MAPS, ["a", 1, "c", "d"]), TypeError, r"expected tokens\[1\] to be a str, got int"),
    (lambda: attention_html(MAPS, TOKENS, layer="layer 9"), ValueError,
     r"expected a layer in \['layer 1', 'layer 2'\], got 'layer 9'"),
    (lambda: attention_html(MAPS, TOKENS, head=2), ValueError, r"expected a head in \[0, 2\) for layer 'layer 1'"),
    (lambda: attention_html(MAPS, TOKENS, query=4), ValueError, r"expected a query token in \[0, 4\), got 4"),
    (lambda: attention_html(MAPS, TOKENS, highlight=[4]), ValueError,
     r"expected highlight as key indices in \[0, 4\), got 4"),
    (lambda: attention_html({"l": NAN}, TOKENS), ValueError,
     r"expected finite maps\['l'\], got NaN or inf in 1 of 32 values"),
    (lambda: attention_html({"l": -MAPS["layer 1"]}, TOKENS), ValueError,
     r"expected maps\['l'\] >= 0\.0, got values in \[-0\.\d+, -0\.\d+\]"),
    (lambda: retrieval_html(QUERIES, IMAGES[0], SCORES), ValueError,
     r"expected a list or batch of images, got one image of shape \(8, 8, 3\); pass \[image\]"),
    (lambda: retrieval_html(QUERIES, "pictures", SCORES), TypeError, r"expected images as a list or batch .* got str"),
    (lambda: retrieval_html(QUERIES, [], SCORES), ValueError, r"expected at least one image, got none"),
    (lambda: retrieval_html(QUERIES, IMAGES.astype(np.int64), SCORES), TypeError,
     r"^images\[0\]: expected uint8 values in 0\.\.255 or float values in \[0, 1\], got dtype int64"),
    (lambda: retrieval_html(QUERIES, IMAGES / 1.0, SCORES), ValueError,
     r"^images\[0\]: expected float values in \[0, 1\], got values in"),
    (lambda: retrieval_html(QUERIES, IMAGES, SCORES.T), ValueError,
     r"expected scores of shape \(Q, N\) = \(3, 6\) for 3 queries and 6 images, got \(6, 3\)"),
    (lambda: retrieval_html(QUERIES, IMAGES, SCORES[0]), ValueError, r"expected scores of shape \(Q, N\), got shape"),
    (lambda: retrieval_html(QUERIES, IMAGES, SCORES, k=7), ValueError, r"k must be at most 6, got 7"),
    (lambda: retrieval_html(QUERIES, IMAGES, SCORES, k=0), ValueError, r"k must be a positive int, got 0"),
    (lambda: retrieval_html(QUERIES, IMAGES, SCORES * float("inf")), ValueError, r"expected finite scores"),
    (lambda: retrieval_html([], IMAGES, SCORES), ValueError, r"expected at least 1 queries, got 0"),
    (lambda: retrieval_html(QUERIES, IMAGES, SCORES, titles=["x"]), ValueError, r"expected 6 titles, got 1"),
    (lambda: itm_html(CAPTIONS, IMAGES[:2], ITM[0], CROSS), ValueError,
     r"expected itm_scores of shape \(C, N\) = \(2, 2\) for 2 captions and 2 images \(or \(C,\) for one image\), "
     r"got \(2,\)"),
    (lambda: itm_html(CAPTIONS, IMAGES[:2], ITM * 5, CROSS), ValueError,
     r"expected itm_scores in \[0\.0, 1\.0\], got values in \[0\.5, 4\.5\]"),
    (lambda: itm_html(CAPTIONS, IMAGES[:2], ITM, CROSS[:1]), ValueError,
     r"expected cross_attention for 2 captions, got 1"),
    (lambda: itm_html(CAPTIONS, IMAGES[:2], ITM, [CROSS[0], CROSS[0]]), ValueError,
     r"expected cross_attention\[1\] of shape \(N, T_c, P\) = \(2, 6, P\) for 2 images and 6 words, "
     r"got \(2, 3, 4\)"),
    (lambda: itm_html(CAPTIONS, IMAGES[:2], ITM, [c[0] for c in CROSS]), ValueError,
     r"expected cross_attention\[0\] of shape \(N, T, P\), got shape \(3, 4\)"),
    (lambda: itm_html(CAPTIONS, IMAGES[:2], ITM, CROSS, tokens=[["a"]]), ValueError,
     r"expected tokens as 2 lists of words, one per caption, got list of 1"),
    (lambda: itm_html(CAPTIONS, IMAGES[:2], ITM, CROSS, grid=3), ValueError,
     r"expected cross_attention\[0\] over P = grid \* grid = 9 patches, got P = 4; pass grid"),
    (lambda: itm_html(CAPTIONS, IMAGES[:2], ITM, [torch.rand(2, 3, 5), CROSS[1]]), ValueError,
     r"over P = grid \* grid = 4 patches, got P = 5"),
    (lambda: itm_html(CAPTIONS, IMAGES[:2], ITM, CROSS, size=0), ValueError, r"size must be a positive int, got 0"),
    (lambda: display_html(None), TypeError, r"expected the str of HTML .* got NoneType"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUT)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
DRIVE = """<script>window.addEventListener("load", function () {
  var f = document.querySelectorAll(".vl-figure"), out = [];
  function fire(e, type) { e.dispatchEvent(new Event(type, {bubbles: true})); }
  function last(fig) { var t = fig.querySelectorAll(".vl-title"); return t[t.length - 1].textContent; }
  var sel = f[0].querySelectorAll("select"); sel[0].value = "0"; fire(sel[0], "change");
  fire(f[0].querySelectorAll(".vl-tok")[2], "mouseenter");
  out.push(last(f[0]) + " | heads " + sel[1].options.length);
  var input = f[1].querySelector("input"); input.value = "blue"; fire(input, "input");
  out.push(f[1].querySelector("figcaption").textContent + " | " + f[1].querySelectorAll("img").length);
  fire(f[2].querySelectorAll(".vl-tok")[1], "mouseenter"); out.push(last(f[2]));
  var ready = document.querySelectorAll(".vl-figure[data-ready]").length;
  document.body.insertAdjacentHTML("beforeend", "<pre id=result>" + ready + " ready | " + out.join(" | ") + "</pre>");
});</script>"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium")
def test_figures_run_in_a_browser(tmp_path):
    page = tmp_path / "page.html"
    shown = figures()
    shown.append(shown[0])  # one output shown twice (a second view of it): the copy works too
    page.write_text("<!doctype html><meta charset=utf-8><body>" + "".join(shown) + DRIVE + "</body>", encoding="utf-8")
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=2000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    (result,) = re.findall(r"<pre id=\"result\">(.*?)</pre>", dom)
    assert result == ("4 ready | layer 1, head 0: query 2:\u2018circle\u2019 attends to ... | heads 2 | "
                      f"1. #{SCORES[1].argmax()}  {SCORES[1].max():.3f} | 2 | where \u2018red\u2019 looks")
