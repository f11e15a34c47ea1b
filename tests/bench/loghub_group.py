"""Loghub-2k grouping adapter: ``python ga.py tests/bench/loghub_group.py:group``.

A fresh :class:`Fingerprinter` per call, fed the lines online in file order (the product path).
The returned keys are the keys *after* the whole batch: each line's online key resolved through
:meth:`Fingerprinter.resolve` (equal to fingerprinting the line again at the end).  Grouping is the
same either way, since an alias only renames a group or folds it into another.
"""

from __future__ import annotations

from sentinel.core.fingerprint import Fingerprinter


def group(lines: list[str]) -> list[str]:
    fp = Fingerprinter()
    online = [fp.fingerprint(line).key for line in lines]
    final = {key: fp.resolve(key) for key in set(online)}
    return [final[key] for key in online]
