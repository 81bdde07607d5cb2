# SDK v2: data assets replace FileDataset (uri_folder / uri_file) and TabularDataset (mltable).
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Data

files = ml_client.data.create_or_update(Data(
    name="diabetes-files", path="data/raw", type=AssetTypes.URI_FOLDER,
    description="the raw CSV exports, as files",
))
table = ml_client.data.create_or_update(Data(
    name="diabetes-table", path="data/table", type=AssetTypes.MLTABLE,  # a folder with an MLTable file
    description="the same rows, read as a table",
))
latest = ml_client.data.get("diabetes-table", label="latest")
print(files.id, table.version, latest.path)
