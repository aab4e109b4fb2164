"""Input and output: the contract's tables, reading, validation, summaries and safe writing."""

from healthscore.io.dataset import Dataset
from healthscore.io.read import dataset_from_frames, load_dataset
from healthscore.io.schema import TABLES
from healthscore.io.summary import render_summary, summarise
from healthscore.io.write import neutralise_csv_cells, write_table_atomic

__all__ = [
    "TABLES",
    "Dataset",
    "dataset_from_frames",
    "load_dataset",
    "neutralise_csv_cells",
    "render_summary",
    "summarise",
    "write_table_atomic",
]
