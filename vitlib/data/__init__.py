"""Data of the course: ShapesWorld (scenes, images, language), its tokenizer and torch datasets (chapter 00)."""

from .catalog import distinct_scenes, one_object_scenes
from .datasets import IGNORE_INDEX, ConversationDataset, ImageCaptionDataset, VQADataset, chat_ids
from .language import parse_caption
from .render import to_tensor
from .shapes import SPLITS, Obj, Scene, ShapesWorld
from .tokenizer import WordTokenizer

__all__ = ["one_object_scenes", "distinct_scenes", "ShapesWorld", "Scene", "Obj", "SPLITS", "WordTokenizer", "ImageCaptionDataset", "VQADataset",
           "ConversationDataset", "chat_ids", "IGNORE_INDEX", "parse_caption", "to_tensor"]
