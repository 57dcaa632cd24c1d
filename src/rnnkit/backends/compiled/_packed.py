"""The products of every time step, ``out = rows @ weight`` (the input projection, the
recurrent product, and their gradients with respect to x[t] and h[t-1]), against a weight packed
once per sequence (imported by ``_fused_loops``, with numba), and the BLAS they may call.

OpenBLAS copies ("packs") the weight into its own layout at every call: for the small-batch
products of a time loop, (B x H)(H x 4H), that copy costs about as much as the arithmetic.
``pack`` makes that copy once per sequence; ``packed_product`` then runs a register tile written
in LLVM vector code (``_tile``): ``rows`` values broadcast against ``PANEL`` columns of the packed
weight, accumulated in vector registers over the whole inner dimension and stored once. On these
products it runs about twice as fast as OpenBLAS (measured: docs/performance.md, docs/fast_path.md).

The tile wins only where numba's target CPU (the host, or NUMBA_CPU_NAME and NUMBA_CPU_FEATURES)
has fused multiply-adds on the tile's vectors: without FMA, LLVM makes each ``llvm.fma`` a call
to ``fmaf`` per lane, and the tile runs dozens of times slower than NumPy's matmul. So
``PRODUCT`` is chosen once, at import, by compiling a probe of the tile's intrinsics for numba's
target (``_target_fuses``): "avx512" (16 lanes x 8 rows) where it makes zmm FMAs, else "avx2"
(8 lanes x 6 rows) where it makes ymm FMAs, else "blas": the same ``pack``, ``pack_transpose``
and ``packed_product`` on cblas_sgemm, ``pack`` keeping a C-ordered (K, N) copy of the weight.
The environment variable RNNKIT_TILE=avx512 | avx2 | blas forces one (the tests run each on any
machine); ``PRODUCT_PATH`` says in one line which runs and why.
"""

from pathlib import Path

import llvmlite.binding
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.registry import cpu_target
from numba.extending import intrinsic

from rnnkit.backends.compiled._fused import COMPILE_OPTIONS, TILE, blas

# cblas_sgemm(layout, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) of NumPy's
# OpenBLAS (``_fused.blas``), called by name: the symbol is looked up when compiled (or cached)
# code is loaded, so the cache holds no address. Pointers go in as integers
# (``array.ctypes.data``), as the x86-64 and arm64 ABIs allow.
_BLAS = blas()
llvmlite.binding.load_library_permanently(_BLAS.path)
_int = types.int64 if _BLAS.integer_bits == 64 else types.int32
_enum, _pointer = types.int32, types.intp
sgemm = types.ExternalFunction(
    _BLAS.symbol("cblas_sgemm"),
    types.void(_enum, _enum, _enum, _int, _int, _int, types.float32, _pointer, _int, _pointer,
               _int, types.float32, _pointer, _int),
)  # fmt: skip
ROW_MAJOR, NO_TRANS, TRANS = np.int32(101), np.int32(111), np.int32(112)  # CBLAS enums

# Vector registers: 32 of 16 floats with AVX-512, 16 of 8 with AVX2. A tile holds ROWS x VECTORS
# accumulators, plus VECTORS for the weight's row and one for the broadcast value.
TILES = {"avx512": (16, 8), "avx2": (8, 6)}  # lanes (floats a vector), rows per full tile
VECTORS = 2

_I64, _I32 = ir.IntType(64), ir.IntType(32)
jit = numba.njit(**COMPILE_OPTIONS)


def _vector_intrinsics(module: ir.Module, lanes: int) -> tuple:
    """The LLVM intrinsics the tile calls on vectors of ``lanes`` floats, declared in ``module``:
    ``(fma, masked_load, masked_store)``."""
    vector = ir.VectorType(ir.FloatType(), lanes)
    flags = ir.VectorType(ir.IntType(1), lanes)
    declare = cgutils.get_or_insert_function
    return (
        declare(module, ir.FunctionType(vector, [vector] * 3), f"llvm.fma.v{lanes}f32"),
        declare(module, ir.FunctionType(vector, [vector.as_pointer(), _I32, flags, vector]),
                f"llvm.masked.load.v{lanes}f32.p0"),
        declare(module, ir.FunctionType(ir.VoidType(), [vector, vector.as_pointer(), _I32, flags]),
                f"llvm.masked.store.v{lanes}f32.p0"),
    )  # fmt: skip


def _target_fuses(lanes: int) -> bool:
    """Whether LLVM, for numba's target CPU, compiles the tile's intrinsics on ``lanes`` floats
    into fused multiply-adds on registers that wide (x86's vfmadd on ymm, 8 floats, or zmm, 16):
    a probe loads a vector (masked), takes fma(v, v, v) and stores it. False where the names
    are not this LLVM's, or the CPU is no x86."""
    triple, cpu, features = cpu_target.target_context.codegen().magic_tuple()
    module = ir.Module("probe")
    module.triple = triple
    vector = ir.VectorType(ir.FloatType(), lanes)
    flags = ir.VectorType(ir.IntType(1), lanes)
    probe = ir.Function(module, ir.FunctionType(ir.VoidType(), [vector.as_pointer(), flags]), "p")
    builder = ir.IRBuilder(probe.append_basic_block())
    fma, masked_load, masked_store = _vector_intrinsics(module, lanes)
    pointer, mask = probe.args
    alignment, zero = ir.Constant(_I32, 4), ir.Constant(vector, [0.0] * lanes)
    value = builder.call(masked_load, [pointer, alignment, mask, zero])
    builder.call(masked_store, [builder.call(fma, [value] * 3), pointer, alignment, mask])
    builder.ret_void()
    machine = llvmlite.binding.Target.from_triple(triple).create_target_machine(
        cpu=cpu, features=features, opt=3
    )
    try:
        assembly = machine.emit_assembly(llvmlite.binding.parse_assembly(str(module)))
    except RuntimeError:  # an intrinsic this LLVM does not know
        return False
    return "vfmadd" in assembly and {8: "ymm", 16: "zmm"}[lanes] in assembly


def _choose() -> tuple[str, str]:
    """``(PRODUCT, why)``."""
    if TILE != "auto":
        return TILE, f"forced by RNNKIT_TILE={TILE}"
    cpu = cpu_target.target_context.codegen().magic_tuple()[1]
    for name, (lanes, _) in TILES.items():
        if _target_fuses(lanes):
            return name, f"numba's target CPU {cpu} has FMA on {lanes}-float vectors"
    return "blas", f"numba's target CPU {cpu} has no FMA on 8- or 16-float vectors"


PRODUCT, _WHY = _choose()
LANES, ROWS = TILES.get(PRODUCT, (0, 0))  # 0: no tile (the BLAS product)
PANEL = LANES * VECTORS  # the packed weight's columns per panel
PRODUCT_PATH = (
    f"register tile, {LANES} lanes x {ROWS} rows ({_WHY})"
    if LANES
    else f"BLAS sgemm of {Path(_BLAS.path).name} ({_WHY})"
)


def _c_ordered_float32(array_type, dims: int) -> bool:
    return (
        isinstance(array_type, types.Array)
        and array_type.dtype == types.float32
        and array_type.ndim == dims
        and array_type.layout == "C"
    )


def _tile_intrinsic(rows_per_tile: int):
    """An intrinsic ``tile(rows, row, packed, panel, dest, dest_row, dest_column, columns,
    accumulate)``: dest[dest_row : +rows_per_tile, dest_column : +columns] = rows[row :
    +rows_per_tile] @ packed[panel][:, :columns] (+ that block of dest when ``accumulate``), for
    1 <= columns <= PANEL: the reads and writes of dest are masked to its first ``columns``
    columns (a last, partial panel). rows (B, K), packed (panels, K, PANEL) and dest (any,
    width) are C-ordered float32; the block must lie inside dest."""

    @intrinsic
    def tile(typingctx, rows, row, packed, panel, dest, dest_row, dest_column, columns, accumulate):
        if not all(_c_ordered_float32(array, dims) for array, dims in
                   ((rows, 2), (packed, 3), (dest, 2))):  # fmt: skip
            return None  # a typing error: the tile reads rows by their width, C-ordered
        signature = types.void(
            rows, row, packed, panel, dest, dest_row, dest_column, columns, accumulate
        )

        def codegen(context, builder, sig, args):
            rows_array = context.make_array(sig.args[0])(context, builder, args[0])
            packed_array = context.make_array(sig.args[2])(context, builder, args[2])
            dest_array = context.make_array(sig.args[4])(context, builder, args[4])
            inner = cgutils.unpack_tuple(builder, rows_array.shape, 2)[1]
            dest_width = cgutils.unpack_tuple(builder, dest_array.shape, 2)[1]
            vector = ir.VectorType(ir.FloatType(), LANES)
            fma, masked_load, masked_store = _vector_intrinsics(builder.module, LANES)
            alignment = ir.Constant(_I32, 4)
            lanes = ir.Constant(ir.VectorType(_I64, LANES), list(range(LANES)))

            def spread(value, element_type):  # a vector of LANES copies of value
                vector_type = ir.VectorType(element_type, LANES)
                first = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value,
                                               ir.Constant(_I32, 0))  # fmt: skip
                zeros = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)
                return builder.shuffle_vector(first, ir.Constant(vector_type, ir.Undefined), zeros)

            masks = []  # per vector of a row: its lanes below ``columns``
            for v in range(VECTORS):
                remaining = builder.sub(args[7], ir.Constant(_I64, LANES * v))
                masks.append(builder.icmp_signed("<", lanes, spread(remaining, _I64)))
            row_base = builder.gep(rows_array.data, [builder.mul(args[1], inner)])
            panel_size = builder.mul(inner, ir.Constant(_I64, PANEL))
            panel_base = builder.gep(packed_array.data, [builder.mul(args[3], panel_size)])
            dest_offset = builder.add(builder.mul(args[5], dest_width), args[6])
            dest_base = builder.gep(dest_array.data, [dest_offset])

            def vector_at(base, offset):  # a pointer to LANES floats at base + offset
                return builder.bitcast(builder.gep(base, [offset]), vector.as_pointer())

            dest_vectors = [
                vector_at(dest_base, builder.add(builder.mul(ir.Constant(_I64, r), dest_width),
                                                 ir.Constant(_I64, LANES * v)))
                for r in range(rows_per_tile) for v in range(VECTORS)
            ]  # fmt: skip
            zero = ir.Constant(vector, [0.0] * LANES)
            start = [
                builder.call(masked_load, [p, alignment, masks[i % VECTORS], zero])
                for i, p in enumerate(dest_vectors)
            ]
            keep = builder.icmp_unsigned("!=", args[8], ir.Constant(args[8].type, 0))
            start = [builder.select(keep, value, zero) for value in start]

            entry = builder.basic_block
            loop = builder.append_basic_block("inner")
            done = builder.append_basic_block("stored")
            builder.branch(loop)
            builder.position_at_end(loop)
            k = builder.phi(_I64)
            k.add_incoming(ir.Constant(_I64, 0), entry)
            sums = []
            for value in start:
                phi = builder.phi(vector)
                phi.add_incoming(value, entry)
                sums.append(phi)
            weight_row = builder.mul(k, ir.Constant(_I64, PANEL))
            weights = [
                builder.load(vector_at(panel_base, builder.add(weight_row,
                                                               ir.Constant(_I64, LANES * v))),
                             align=4)
                for v in range(VECTORS)
            ]  # fmt: skip
            new_sums = []
            for r in range(rows_per_tile):
                offset = builder.add(builder.mul(ir.Constant(_I64, r), inner), k)
                value = spread(builder.load(builder.gep(row_base, [offset])), ir.FloatType())
                for v in range(VECTORS):
                    total = sums[r * VECTORS + v]
                    new_sums.append(builder.call(fma, [value, weights[v], total]))
            next_k = builder.add(k, ir.Constant(_I64, 1))
            k.add_incoming(next_k, builder.basic_block)
            for phi, value in zip(sums, new_sums, strict=True):
                phi.add_incoming(value, builder.basic_block)
            builder.cbranch(builder.icmp_signed("<", next_k, inner), loop, done)

            builder.position_at_end(done)
            for i, (pointer, value) in enumerate(zip(dest_vectors, new_sums, strict=True)):
                builder.call(masked_store, [value, pointer, alignment, masks[i % VECTORS]])
            return context.get_dummy_value()

        return signature, codegen

    return tile


_tile_full = _tile_intrinsic(ROWS)
_tile_4 = _tile_intrinsic(4)
_tile_2 = _tile_intrinsic(2)
_tile_1 = _tile_intrinsic(1)


@jit
def pack(weight):
    """weight (K, N), C-ordered, copied into panels of PANEL columns: (ceil(N / PANEL), K, PANEL),
    the last panel padded with zeros."""
    inner, width = weight.shape
    panels = -(-width // PANEL)
    packed = np.zeros((panels, inner, PANEL), np.float32)
    for k in range(inner):  # row by row: reads weight in order, writes PANEL values per panel
        row = weight[k]
        for panel in range(width // PANEL):
            target, first = packed[panel, k], panel * PANEL
            for j in range(PANEL):
                target[j] = row[first + j]
        for j in range(width - width % PANEL, width):
            packed[panels - 1, k, j % PANEL] = row[j]
    return packed


@jit
def pack_transpose(weight):
    """``pack(weight.T)`` for weight (N, K), C-ordered, without a transposed copy (reading
    weight's rows in order costs a fraction of making weight.T contiguous first):
    (ceil(N / PANEL), K, PANEL)."""
    width, inner = weight.shape
    packed = np.zeros((-(-width // PANEL), inner, PANEL), np.float32)
    for j in range(width):  # weight's rows in order, each into one column of its panel
        row, target, column = weight[j], packed[j // PANEL], j % PANEL
        for k in range(inner):
            target[k, column] = row[k]
    return packed


@jit
def _tiles(rows, row, count, packed, panel, dest, dest_row, dest_column, columns, accumulate):
    """Rows row .. row + count - 1 against one panel, in tiles of ROWS, 4, 2 and 1 rows."""
    block = (packed, panel, dest)
    while count >= ROWS:
        _tile_full(rows, row, *block, dest_row, dest_column, columns, accumulate)
        row, dest_row, count = row + ROWS, dest_row + ROWS, count - ROWS
    if count >= 4:
        _tile_4(rows, row, *block, dest_row, dest_column, columns, accumulate)
        row, dest_row, count = row + 4, dest_row + 4, count - 4
    if count >= 2:
        _tile_2(rows, row, *block, dest_row, dest_column, columns, accumulate)
        row, dest_row, count = row + 2, dest_row + 2, count - 2
    if count == 1:
        _tile_1(rows, row, *block, dest_row, dest_column, columns, accumulate)


ROW_BLOCK = 256  # rows per pass over the panels: (256 x K) floats stay in L2 as they pass


@jit
def packed_product(rows, packed, out, accumulate, first, last):
    """out[first:last] = rows[first:last] @ weight (K, N), plus out[first:last] when
    ``accumulate``: rows (B, K), out (B, N), ``packed`` is ``pack(weight)``; all C-ordered
    float32. The rows go ROW_BLOCK at a time past every panel; a last, partial panel writes its
    columns only (masked)."""
    width = out.shape[1]
    for block in range(first, last, ROW_BLOCK):
        count = min(ROW_BLOCK, last - block)
        for panel in range(packed.shape[0]):
            column = panel * PANEL
            columns = min(PANEL, width - column)
            _tiles(rows, block, count, packed, panel, out, block, column, columns, accumulate)


@jit
def _kept(weight):
    """``pack`` for the BLAS product: weight (K, N), C-ordered, copied as it is."""
    return weight.copy()


@jit
def _kept_transpose(weight):
    """``pack_transpose`` for the BLAS product: the C-ordered (K, N) copy of weight (N, K).T."""
    return np.ascontiguousarray(weight.T)


@jit
def _blas_product(rows, weight, out, accumulate, first, last):
    """``packed_product`` on BLAS: out[first:last] = rows[first:last] @ weight, plus
    out[first:last] when ``accumulate``, in one cblas_sgemm: rows (B, K), weight (K, N) (from
    ``_kept``), out (B, N), all C-ordered float32."""
    if last <= first:
        return
    inner, width = weight.shape
    beta = np.float32(1.0) if accumulate else np.float32(0.0)
    sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, last - first, width, inner, np.float32(1.0),
          rows[first:].ctypes.data, rows.shape[1], weight.ctypes.data, width, beta,
          out[first:].ctypes.data, out.shape[1])  # fmt: skip


if not LANES:  # the same three names, on BLAS
    pack, pack_transpose, packed_product = _kept, _kept_transpose, _blas_product
