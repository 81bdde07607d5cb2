"""The VM sizes the simulated workspace offers for compute clusters and instances.

The numbers are those Azure publishes for each size (vCPUs, memory in GiB, GPU count and
model), taken from the Azure virtual-machine size pages (general purpose Dv2/Dsv3/Dasv4/
Ddsv4, compute optimised Fsv2, memory optimised Esv3, GPU NCv3, NCasT4_v3, NC A100 v4,
ND A100 v4, NVv3, NVadsA10 v5) and checked against the tables quoted in Azure ML's own
GPU and TUFLOW guidance. ``family`` is the quota family name the service reports in
``list_usage`` (e.g. ``standardDSv2Family``), which is how quota is counted.

What differs on Azure: availability varies by region and changes over time (retired
sizes such as Standard_NC6 (K80) are gone, new ones appear); here every region offers
this same table. Azure matches size names case-insensitively (the SDK's own default is
``STANDARD_DS3_V2``), and so does :func:`find_size`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from azure.ai.ml._restclient.arm_ml_service.models import VirtualMachineSize

AML_COMPUTE = "AmlCompute"
COMPUTE_INSTANCE = "ComputeInstance"


@dataclass(frozen=True)
class VmSpec:
    name: str
    vcpus: int
    memory_gb: float
    gpus: int
    gpu_type: str | None
    family: str
    family_label: str  # how the portal and list_usage spell the family
    low_priority_capable: bool = True
    premium_io: bool = True
    supported_compute_types: tuple[str, ...] = (AML_COMPUTE, COMPUTE_INSTANCE)

    @property
    def is_gpu(self) -> bool:
        return self.gpus > 0

    def _to_rest_object(self) -> VirtualMachineSize:
        return VirtualMachineSize(
            name=self.name,
            family=self.family,
            v_cp_us=self.vcpus,
            gpus=self.gpus,
            memory_gb=self.memory_gb,
            low_priority_capable=self.low_priority_capable,
            premium_io=self.premium_io,
            supported_compute_types=list(self.supported_compute_types),
        )


def _series(family: str, label: str, gpu_type: str | None,
            sizes: Iterable[tuple[str, int, float, int]]) -> list[VmSpec]:
    return [VmSpec(name, vcpus, memory, gpus, gpu_type if gpus else None, family, label)
            for name, vcpus, memory, gpus in sizes]


VM_SIZES: list[VmSpec] = [
    # -- general purpose ---------------------------------------------------------------------
    *_series("standardDSv2Family", "Standard DSv2 Family", None, [
        ("Standard_DS1_v2", 1, 3.5, 0),
        ("Standard_DS2_v2", 2, 7, 0),
        ("Standard_DS3_v2", 4, 14, 0),
        ("Standard_DS4_v2", 8, 28, 0),
        ("Standard_DS5_v2", 16, 56, 0),
        # The memory-optimised DSv2 sizes share the DSv2 quota family.
        ("Standard_DS11_v2", 2, 14, 0),
        ("Standard_DS12_v2", 4, 28, 0),
        ("Standard_DS13_v2", 8, 56, 0),
        ("Standard_DS14_v2", 16, 112, 0),
    ]),
    *_series("standardDSv3Family", "Standard DSv3 Family", None, [
        ("Standard_D2s_v3", 2, 8, 0),
        ("Standard_D4s_v3", 4, 16, 0),
        ("Standard_D8s_v3", 8, 32, 0),
        ("Standard_D16s_v3", 16, 64, 0),
        ("Standard_D32s_v3", 32, 128, 0),
    ]),
    *_series("standardDASv4Family", "Standard DASv4 Family", None, [
        ("Standard_D2as_v4", 2, 8, 0),
        ("Standard_D4as_v4", 4, 16, 0),
        ("Standard_D8as_v4", 8, 32, 0),
        ("Standard_D16as_v4", 16, 64, 0),
    ]),
    *_series("standardDDSv4Family", "Standard DDSv4 Family", None, [
        ("Standard_D2ds_v4", 2, 8, 0),
        ("Standard_D4ds_v4", 4, 16, 0),
        ("Standard_D8ds_v4", 8, 32, 0),
    ]),
    # -- compute optimised -------------------------------------------------------------------
    *_series("standardFSv2Family", "Standard FSv2 Family", None, [
        ("Standard_F2s_v2", 2, 4, 0),
        ("Standard_F4s_v2", 4, 8, 0),
        ("Standard_F8s_v2", 8, 16, 0),
        ("Standard_F16s_v2", 16, 32, 0),
        ("Standard_F32s_v2", 32, 64, 0),
    ]),
    # -- memory optimised --------------------------------------------------------------------
    *_series("standardESv3Family", "Standard ESv3 Family", None, [
        ("Standard_E2s_v3", 2, 16, 0),
        ("Standard_E4s_v3", 4, 32, 0),
        ("Standard_E8s_v3", 8, 64, 0),
        ("Standard_E16s_v3", 16, 128, 0),
        ("Standard_E32s_v3", 32, 256, 0),
    ]),
    # -- GPU ---------------------------------------------------------------------------------
    # The V100 NCv3 sizes (Standard_NC6s_v3, NC12s_v3, NC24s_v3) retired on 30 September 2025
    # (Azure's NCv3 retirement notice), so they are not offered, and creating one is refused.
    *_series("standardNCASv3_T4Family", "Standard NCASv3_T4 Family", "NVIDIA Tesla T4 16GB", [
        ("Standard_NC4as_T4_v3", 4, 28, 1),
        ("Standard_NC8as_T4_v3", 8, 56, 1),
        ("Standard_NC16as_T4_v3", 16, 110, 1),
        ("Standard_NC64as_T4_v3", 64, 440, 4),
    ]),
    *_series("StandardNCADSA100v4Family", "Standard NCADSA100v4 Family", "NVIDIA A100 80GB PCIe", [
        ("Standard_NC24ads_A100_v4", 24, 220, 1),
        ("Standard_NC48ads_A100_v4", 48, 440, 2),
        ("Standard_NC96ads_A100_v4", 96, 880, 4),
    ]),
    *_series("standardNDASv4_A100Family", "Standard NDASv4_A100 Family", "NVIDIA A100 40GB SXM", [
        ("Standard_ND96asr_v4", 96, 900, 8),
    ]),
    *_series("standardNVSv3Family", "Standard NVSv3 Family", "NVIDIA Tesla M60", [
        ("Standard_NV12s_v3", 12, 112, 1),
        ("Standard_NV24s_v3", 24, 224, 2),
        ("Standard_NV48s_v3", 48, 448, 4),
    ]),
    *_series("StandardNVADSA10v5Family", "Standard NVADSA10v5 Family", "NVIDIA A10 24GB", [
        ("Standard_NV36ads_A10_v5", 36, 440, 1),
    ]),
]

_BY_NAME = {spec.name.lower(): spec for spec in VM_SIZES}


def find_size(name: str | None) -> VmSpec | None:
    """The size called ``name``, matched case-insensitively as the service does."""
    return _BY_NAME.get(name.lower()) if name else None


def families() -> dict[str, str]:
    """Quota family name -> its label, in table order."""
    return {spec.family: spec.family_label for spec in VM_SIZES}
