"""Property: over generated layer stacks, the flattener agrees with a reference model of OCI layer semantics.

The generator writes real layer tars (ustar, GNU or PAX) with files, directories, symlinks, fifos,
hard links (within a layer and into lower layers), whiteouts, opaque whiteouts, and replacements of a
directory by a file and back, over a handful of names (long, non-ASCII and non-UTF-8 ones among them)
so that paths collide often; PAX layers add extended attributes, sub-second mtimes, user names and
uids past ustar's range. Every entry carries a unique mtime, so the output shows exactly which entry
won each path.

The model (tests/infra/layer_stacks.py, with the generator) is the OCI image spec's layer semantics written as plainly as possible, on a dict of
paths rather than a tree: for each layer, first its whiteouts and opaque markers act on what the lower
layers made (they "only apply to resources in lower layers"), then its entries apply in tar order;
missing parents are created as Docker creates them (0755, root, mtime 0); a hard link shares its
target's inode as it is at that point. It refuses (and so must the flattener, with a LayerError) a
write through a parent that is not a directory, and a hard link whose target is missing or is a
directory. Otherwise the flattened tar must hold exactly the model's paths, each with the model's
type, metadata and content, hard links grouped as the model's inodes, in canonical order with every
hard link after the member that carries its data, and GNU tar must extract it to that same tree
(types, modes, owners, contents, link targets, shared inodes). Anything else the flattener raises is a
failure.

The `ci` profile (conftest) runs a bounded number of examples.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import tempfile
from pathlib import Path

from hypothesis import event, given
from hypothesis import strategies as st

from exchange_cli.rootfs.flatten import LayerError, flatten
from tests.infra.layer_stacks import (
    Model,
    Refused,
    canonical,
    described,
    extracted,
    layer_stacks,
    model_of,
    only_whiteouts_first,
    read_output,
    spell,
    write_layer,
)

# --- the property -----------------------------------------------------------------------------------


@given(layers=layer_stacks(), spelling=st.lists(st.integers(0, 3), min_size=64, max_size=64),
       whiteouts_first=st.booleans())
def test_the_flattener_refuses_or_agrees_with_the_reference_model(layers, spelling, whiteouts_first) -> None:
    try:
        expected: Model | None = model_of(layers)
    except Refused as refusal:
        expected = None
        event(f"refused: {str(refusal).split(':')[0].split(' ')[0]}")
    with tempfile.TemporaryDirectory() as scratch:
        spellings = itertools.cycle(spelling)
        blobs = [write_layer(Path(scratch), [op.entry(spell(op.path, op.kind, next(spellings)),
                                                      spell(op.target, "", next(spellings))) for op in ops], format_)
                 for format_, ops in layers]
        out = io.BytesIO()
        try:
            with only_whiteouts_first() if whiteouts_first else contextlib.nullcontext():
                flatten(blobs, out)
        except LayerError as error:
            assert expected is None, f"the flattener refused what the model accepts: {error}"
            return
        assert expected is not None, "the flattener accepted what the model refuses"
        tree, groups, order = read_output(out.getvalue())
        expected_tree, expected_groups = described(expected)
        event(f"accepted: {min(len(tree), 9)}+ paths, {len(groups)} hard-link groups")
        assert tree == expected_tree
        assert groups == expected_groups
        assert order == sorted(order, key=canonical)
        # And an extractor agrees: every member lands, hard links find their data, nothing is left out.
        on_disk, disk_groups = extracted(out.getvalue(), Path(scratch) / "rootfs")
        assert on_disk == {path: (kind, meta[0], meta[1], data, target)
                           for path, (kind, meta, data, target) in expected_tree.items()}
        assert disk_groups == expected_groups
