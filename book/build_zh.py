"""Build the Chinese edition of the book into _build/html/zh, from the same sources and the translations in
locales/zh_CN/LC_MESSAGES (sphinx-intl). Run after `jupyter-book build .` (`make book` runs both):

    python book/build_zh.py          # the English edition's configuration with language = zh_CN
"""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The table of contents' part captions live in _toc.yml, outside the translated pages
CAPTIONS = {"Getting started": "入门", "Part I — LLM foundations": "第一部分 — 大语言模型基础",
            "Part II — Seeing and aligning": "第二部分 — 视觉与对齐", "Part III — Generating": "第三部分 — 生成",
            "Part IV — Following instructions": "第四部分 — 遵循指令",
            "Part V — Acting and frontiers": "第五部分 — 行动与前沿", "Reference": "参考"}


def main() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    config["sphinx"]["config"]["language"] = "zh_CN"
    config["title"] = "视觉遇见语言：从大语言模型基础到视觉指令微调"
    work = ROOT / "_build" / "zh"
    work.mkdir(parents=True, exist_ok=True)
    zh_config = work / "_config.yml"
    zh_config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    for part in toc["parts"]:
        part["caption"] = CAPTIONS[part["caption"]]
    zh_toc = work / "_toc.yml"
    zh_toc.write_text(yaml.safe_dump(toc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    subprocess.run([str(BIN / "jupyter-book"), "build", str(ROOT), "--config", str(zh_config), "--toc", str(zh_toc),
                    "--path-output", str(work), "-W", "--keep-going"], check=True)
    target = ROOT / "_build" / "html" / "zh"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(work / "_build" / "html", target)
    print("the Chinese edition is in", target.relative_to(ROOT))


if __name__ == "__main__":
    main()
