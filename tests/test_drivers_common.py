"""The driver versions share what is common and hold only where they differ.

``model.drivers.vsi_common`` holds the table encodings, the structures and
the C functions the versions share (:class:`VsiDriver`); each version
module defines only the C functions where its C differs.  These tests pin
which functions each version defines (so a difference is never hidden in a
copy, and a copy never hides a sameness) and the encodings' quirks.
"""

import ast
import inspect
import textwrap

import pytest

from model.drivers import DRIVERS, mutants, rk_fixed, vsi_common, vsi_fixed, vsi_mainline, vsi_v3
from model.drivers.vsi_common import VsiDriver
from model.iommu import IOMMU_READ, IOMMU_WRITE

#: the C functions where vsi-mainline and vsi-fixed differ (vsi_common's docstring)
MERGED_DIFFER = {
    "vsi_iommu_irq",
    "vsi_iommu_domain_free",
    "vsi_iommu_map_iova",
    "vsi_iommu_flush_tlb",
    "vsi_iommu_enable",
    "vsi_iommu_identity_attach",
    "vsi_iommu_attach_device",
    "vsi_iommu_suspend",
    "vsi_iommu_resume",
}

OWN = {
    "vsi-mainline": MERGED_DIFFER,
    # and what the C lacks: an emptied page table freed through the gather
    # (R8), flush_iotlb_all for the DMA API's flush queue
    "vsi-fixed": MERGED_DIFFER | {"__init__", "vsi_iommu_zap_tlb", "vsi_iommu_unmap", "vsi_iommu_free_pt", "vsi_iommu_flush_iotlb_all", "flush_iotlb_all"},
    # the posting: its own structures, so every C function touching them
    "vsi-v3": {
        "__init__",
        "vsi_iommu_disable",
        "vsi_iommu_enable",
        "vsi_table_flush",
        "vsi_iommu_flush_tlb_all",
        "vsi_iommu_irq",
        "vsi_iommu_domain_alloc_paging",
        "vsi_iommu_domain_free",
        "vsi_iommu_iova_to_phys",
        "vsi_dte_get_page_table",
        "_vsi_dte_get_page_table",
        "vsi_iommu_unmap_iova",
        "vsi_iommu_map_iova",
        "vsi_iommu_unmap",
        "vsi_iommu_map",
        "_vsi_iommu_map_tail",
        "vsi_iommu_identity_attach",
        "vsi_iommu_attach_device",
        "vsi_iommu_probe_device",
        "vsi_iommu_probe",
        "vsi_iommu_suspend",
        "vsi_iommu_resume",
        "attach_dev",
        "flush_iotlb_all",
    },
    "vsi-v3-gfp-or": {"vsi_dte_get_page_table", "vsi_iommu_map"},
    # the register level only
    "rk-fixed": {"vsi_iommu_irq", "vsi_iommu_map_iova", "vsi_iommu_zap_tlb", "vsi_iommu_enable", "vsi_iommu_disable"},
}


def own_functions(cls):
    return {k for k, v in vars(cls).items() if callable(v) and (not k.startswith("__") or k == "__init__")}


def _body(fn):
    """The function's code without its docstring, as an AST dump."""
    node = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return ast.dump(ast.Module(body=body, type_ignores=[]))


def test_versions_are_vsi_drivers_on_their_layout():
    for name in ("vsi-v3", "vsi-v3-gfp-or", "vsi-mainline", "vsi-fixed"):
        assert issubclass(DRIVERS[name], VsiDriver) and DRIVERS[name].layout == "vsi", name
    assert issubclass(DRIVERS["rk-fixed"], DRIVERS["vsi-fixed"]) and DRIVERS["rk-fixed"].layout == "rk"
    assert VsiDriver.name is None and "VsiDriver" not in {c.__name__ for c in DRIVERS.values()}


@pytest.mark.parametrize("name", sorted(OWN))
def test_each_version_defines_only_where_it_differs(name):
    assert own_functions(DRIVERS[name]) == OWN[name]


@pytest.mark.parametrize("name", sorted(OWN))
def test_no_override_is_a_copy_of_what_it_overrides(name):
    """An override whose code equals the inherited one is a hidden sameness."""
    cls = DRIVERS[name]
    for fn_name in own_functions(cls) - {"__init__"}:
        inherited = next((getattr(b, fn_name) for b in cls.__mro__[1:] if fn_name in vars(b)), None)
        if inherited is not None:
            assert _body(getattr(cls, fn_name)) != _body(inherited), f"{name}.{fn_name} repeats {inherited.__qualname__}"


def test_mainline_and_fixed_differ_in_every_function_they_both_define():
    for fn_name in MERGED_DIFFER:
        assert _body(getattr(vsi_mainline.VsiMainline, fn_name)) != _body(getattr(vsi_fixed.VsiFixed, fn_name)), fn_name


def test_function_names_are_the_c_ones():
    """Driver methods are named after the C (``vsi_*``), besides the ops
    table of ``VsiDriver`` and v3's two helpers shared with its gfp-or
    revision."""
    ops = {"probe", "probe_device", "release_device", "domain_alloc_paging", "domain_free", "attach_dev", "map_pages", "unmap_pages", "flush_iotlb_all", "iova_to_phys", "runtime_suspend", "runtime_resume"}
    for cls in [VsiDriver] + [DRIVERS[n] for n in OWN]:
        for fn_name in own_functions(cls) - {"__init__"} - ops:
            assert fn_name.startswith("vsi_") or fn_name in ("_vsi_dte_get_page_table", "_vsi_iommu_map_tail"), (cls, fn_name)


def test_encodings_are_shared_but_v3s_two():
    """v3 uses the merged encodings, except ``vsi_mk_pte`` (masked with
    0xFFFFFFF0, no u32 truncation) and ``vsi_pte_page_address`` (its u32 PTE
    never carries bits 39:32)."""
    shared = [n for n, v in vars(vsi_common).items() if n.startswith("vsi_") and inspect.isfunction(v)]
    assert set(shared) >= {"vsi_mk_dte", "vsi_dte_pt_address", "vsi_mk_pta", "vsi_iova_dte_index", "vsi_iova_pte_index", "vsi_iova_page_offset"}
    for n in shared:
        for mod in (vsi_mainline, vsi_fixed, mutants):
            if hasattr(mod, n):
                assert getattr(mod, n) is getattr(vsi_common, n), (mod.__name__, n)
        if n in ("vsi_mk_pte", "vsi_pte_page_address"):
            assert getattr(vsi_v3, n) is not getattr(vsi_common, n)
        elif hasattr(vsi_v3, n):
            assert getattr(vsi_v3, n) is getattr(vsi_common, n), n


@pytest.mark.parametrize("paddr", [0x1000, 0x7FFFF000, 0xFFFFF000, 0x1_2345_6000, 0xFF_FFFF_F000])
def test_pte_round_trip(paddr):
    for prot in (IOMMU_READ, IOMMU_READ | IOMMU_WRITE):
        pte = vsi_common.vsi_mk_pte(paddr, prot)
        assert pte < 1 << 32 and vsi_common.vsi_pte_is_page_valid(pte)
        assert vsi_common.vsi_pte_page_address(pte) == paddr  # 40-bit addresses round-trip
        assert vsi_common.vsi_pte_page_address(vsi_common.vsi_mk_pte_invalid(pte)) == paddr
        # v3: the high byte goes into the PTE but never comes back out
        assert vsi_v3.vsi_pte_page_address(vsi_v3.vsi_mk_pte(paddr, prot)) == paddr & 0xFFFFFFFF
        # rk-fixed: v1 PTEs read back by the shared decoder below 4 GiB
        if paddr < 1 << 32:
            assert vsi_common.vsi_pte_page_address(rk_fixed.rk_mk_pte(paddr, prot)) == paddr


def test_dte_and_iova_split():
    dte = vsi_common.vsi_mk_dte(0x0123_4000)
    assert vsi_common.vsi_dte_is_pt_valid(dte) and vsi_common.vsi_dte_pt_address(dte) == 0x0123_4000
    iova = (5 << 22) | (7 << 12) | 0x123
    assert (vsi_common.vsi_iova_dte_index(iova), vsi_common.vsi_iova_pte_index(iova), vsi_common.vsi_iova_page_offset(iova)) == (5, 7, 0x123)
    assert vsi_common.vsi_mk_pta(0x0123_4000) == 0x0123_4000
