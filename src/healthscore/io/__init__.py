"""Input and output: the contract's tables, reading, validation, the output folder and safe writing."""

from healthscore.io.dataset import Dataset
from healthscore.io.read import dataset_from_frames, load_dataset
from healthscore.io.schema import TABLES
from healthscore.io.write import neutralise_csv_cells, write_table_atomic

__all__ = [
    "TABLES",
    "Dataset",
    "dataset_from_frames",
    "load_dataset",
    "neutralise_csv_cells",
    "write_table_atomic",
]
