"""The table :func:`cnnkit.params.explain` returns: one row per layer, totals, text and HTML rendering."""
from __future__ import annotations

import html
from dataclasses import asdict, dataclass

__all__ = ["LayerRow", "Explanation"]


@dataclass(frozen=True)
class LayerRow:
    """One layer of :func:`explain`: its counts, the filled-in formula and its multiply-adds."""

    name: str
    layer_type: str
    output_shape: object  # a tuple like (None, 32, 32, 16), or a list of them
    trainable: int
    non_trainable: int
    formula: str
    multiply_adds: int | None
    madds_formula: str = ""

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def as_dict(self) -> dict:
        return asdict(self)


def _fmt(n) -> str:
    return "?" if n is None else f"{n:,}"


def _shape_text(shape) -> str:
    if isinstance(shape, list):
        return ", ".join(_shape_text(s) for s in shape)
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


class Explanation:
    """The rows of :func:`explain` with totals; prints as a table, shows as HTML in Jupyter.

    ``rows`` (list of :class:`LayerRow`), ``to_dicts()``, ``trainable``,
    ``non_trainable``, ``total``, ``multiply_adds`` (``None`` when a layer's is
    unknown), ``row(name)``; iterate it, index it by position or layer name.
    """

    COLUMNS = ("name", "layer_type", "output_shape", "trainable", "non_trainable", "formula", "multiply_adds")
    HEADERS = ("Layer", "Type", "Output shape", "Trainable", "Non-trainable", "Formula", "Multiply-adds")

    def __init__(self, rows, model_name: str = "model"):
        self.rows: list[LayerRow] = list(rows)
        self.model_name = model_name

    # totals
    @property
    def trainable(self) -> int:
        return sum(r.trainable for r in self.rows)

    @property
    def non_trainable(self) -> int:
        return sum(r.non_trainable for r in self.rows)

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    @property
    def multiply_adds(self) -> int | None:
        values = [r.multiply_adds for r in self.rows]
        return None if any(v is None for v in values) else sum(values)

    # access
    def to_dicts(self) -> list[dict]:
        """The rows as a list of dicts (for pandas: ``pd.DataFrame(e.to_dicts())``)."""
        return [r.as_dict() for r in self.rows]

    def row(self, name: str) -> LayerRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no layer named {name!r}; layers: {[r.name for r in self.rows]}")

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, key):
        return self.row(key) if isinstance(key, str) else self.rows[key]

    # rendering
    def _cells(self, row: LayerRow) -> list[str]:
        return [row.name, row.layer_type, _shape_text(row.output_shape), _fmt(row.trainable),
                _fmt(row.non_trainable), row.formula, _fmt(row.multiply_adds)]

    def totals_line(self) -> str:
        madds = self.multiply_adds
        madds_text = "unknown (input size not fixed)" if madds is None else f"{madds:,}"
        return (f"Total: {self.total:,} parameters = {self.trainable:,} trainable + "
                f"{self.non_trainable:,} non-trainable; multiply-adds per input: {madds_text}")

    def table(self) -> str:
        """A plain-text table, one line per layer, numbers right-aligned, then the totals."""
        body = [self._cells(r) for r in self.rows]
        widths = [max([len(h)] + [len(c[i]) for c in body]) for i, h in enumerate(self.HEADERS)]
        numeric = {3, 4, 6}

        def line(cells):
            return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "-" * len(line(["-" * w for w in widths]))
        out = [f"Parameters of {self.model_name!r} ({len(self.rows)} layers)", line(self.HEADERS), rule]
        out += [line(c) for c in body]
        out += [rule, self.totals_line()]
        return "\n".join(out)

    def __str__(self):
        return self.table()

    def __repr__(self):
        return self.table()

    def _repr_html_(self):
        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in self.HEADERS)
        body = []
        for r in self.rows:
            cells = self._cells(r)
            tds = "".join(
                f'<td style="text-align:right">{esc(c)}</td>' if i in (3, 4, 6) else
                (f"<td><code>{esc(c)}</code></td>" if i == 5 else f"<td>{esc(c)}</td>")
                for i, c in enumerate(cells)
            )
            body.append(f"<tr>{tds}</tr>")
        foot = f'<tr><td colspan="7"><b>{esc(self.totals_line())}</b></td></tr>'
        return (f"<table><caption>Parameters of {esc(self.model_name)!s}</caption>"
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
                f"<tfoot>{foot}</tfoot></table>")
