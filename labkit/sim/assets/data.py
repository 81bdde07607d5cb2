"""``ml_client.data``: ``uri_file``, ``uri_folder`` and ``mltable`` data assets."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from azure.ai.ml._exception_helper import log_and_raise_error
from azure.ai.ml._restclient.arm_ml_service.models import DataContainer, ListViewType
from azure.ai.ml._utils._data_utils import read_local_mltable_metadata_contents
from azure.ai.ml._utils.utils import is_url
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Data
from azure.ai.ml.exceptions import ErrorTarget, ValidationErrorType, ValidationException
from azure.ai.ml.operations import DataOperations as _SdkDataOperations
from azure.ai.ml.operations._data_operations import _assert_local_path_matches_asset_type
from azure.core.paging import ItemPaged

from labkit.sim.assets.shared import VersionedAssetOperations, invalid


def _check_mltable_folder(folder: Path) -> None:
    """An ``mltable`` asset is a folder whose ``MLTable`` file the mltable library can load."""
    if not (folder / "MLTable").is_file():
        raise invalid(f"No MLTable file in {folder}: an mltable data asset is a folder holding an "
                      "MLTable file.", ErrorTarget.DATA, ValidationErrorType.FILE_OR_FOLDER_NOT_FOUND)
    import mltable

    try:
        read_local_mltable_metadata_contents(path=str(folder))
        mltable.load(str(folder))
    except Exception as error:  # the library's own exception types vary by version
        raise invalid(f"The MLTable file in {folder} is not valid: {error}", ErrorTarget.DATA) from error


class DataOperations(VersionedAssetOperations, _SdkDataOperations):
    kind = "data"
    collection = "data"
    entity_class = Data
    container_rest_class = DataContainer
    target = ErrorTarget.DATA

    def _container_extras(self, version_properties: dict) -> dict:
        return {"dataType": version_properties.get("dataType")}

    def list(self, name: Optional[str] = None, *,
             list_view_type: ListViewType = ListViewType.ACTIVE_ONLY) -> ItemPaged[Data]:
        return self._list(name, list_view_type)

    # The SDK's DataOperations.get and create_or_update report their own validation errors
    # through log_and_raise_error, i.e. as a formatted MlException, not a ValidationException.
    def get(self, name: str, version: Optional[str] = None, label: Optional[str] = None) -> Data:
        try:
            return self._get(name, version, label)
        except ValidationException as error:
            log_and_raise_error(error)

    def create_or_update(self, data: Data) -> Data:
        try:
            return self._create_or_update(data)
        except ValidationException as error:
            log_and_raise_error(error)

    def _create_or_update(self, data: Data) -> Data:
        if not data.path:
            raise invalid("Missing data path. Path is required for data.", ErrorTarget.DATA,
                          ValidationErrorType.MISSING_FIELD)
        self._check_name_and_version(data.name, data.version)
        path = str(data.path)
        if not is_url(path):
            local = Path(path) if Path(path).is_absolute() else Path(data.base_path, path).resolve()
            if data.type == AssetTypes.MLTABLE:
                _check_mltable_folder(local)
            else:
                _assert_local_path_matches_asset_type(str(local), data.type)
            data._update_path(self._upload(local, data.datastore))
        data.path = self._service_uri(str(data.path))
        return self._create_version(data, immutable=lambda props: (props.get("dataUri"), props.get("dataType")))
