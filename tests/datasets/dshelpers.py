"""Helpers for dataset tests: small source files, written by the tests, with planted dirt, for every format."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from shoprec.data.records import Record, Rejected

NOW = 1_700_000_000.0  # 2023-11-14: the reference "now" for future-timestamp checks in these tests


def rejected(records: list[Record]) -> list[Rejected]:
    return [r for r in records if isinstance(r, Rejected)]


def write(path: Path, text: str, *, encoding: str = "utf-8", gz: bool = False) -> Path:
    data = text.encode(encoding)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
# line numbers below are file lines (the header is line 1)
RETAIL_ROWS = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",  # 2
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",  # 3
    "536366,85123A,WHITE  hanging heart t-light holder ,2,2010-12-01 08:28:00,2.55,17850.0,United Kingdom",  # 4
    "536367,85123A,CREAM HANGING HEART T-LIGHT HOLDER,1,2010-12-01 09:00:00,2.95,13047.0,France",  # 5
    "536368,22633,HAND WARMER UNION JACK,6,2010-12-01 09:01:00,1.85,,United Kingdom",  # 6 no customer
    "C536379,71053,WHITE METAL LANTERN,-1,2010-12-01 09:41:00,3.39,17850.0,United Kingdom",  # 7 cancellation
    "536370,POST,POSTAGE,3,2010-12-01 08:45:00,18.0,12583.0,France",  # 8 non-product code
    "536371,gift_0001_20,Dotcomgiftshop Gift Voucher £20.00,1,2010-12-01 10:00:00,17.02,13047.0,France",  # 9
    "536372,71053,WHITE METAL LANTERN,4,2010-12-01 10:01:00,0,13047.0,France",  # 10 zero price
    "536373,71053,WHITE METAL LANTERN,-4,2010-12-01 10:02:00,3.39,13047.0,France",  # 11 negative quantity
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",  # 12 duplicate of 3
    "536374,21730,GLASS STAR FROSTED T-LIGHT HOLDER,6,12/1/2010 10:26,4.25,14000,United Kingdom",  # 13 M/D/Y
]
RETAIL_BAD_ROWS = [
    "536380,22752,SET 7 BABUSHKA NESTING BOXES,two,2010-12-01 11:00:00,7.65,17850.0,United Kingdom",  # qty
    "536381,22752,SET 7 BABUSHKA NESTING BOXES,2,yesterday,7.65,17850.0,United Kingdom",  # date
    "536382,22752,SET 7 BABUSHKA NESTING BOXES,2,2010-12-01 11:00:00",  # too few fields
    "536383,22752,SET 7 BABUSHKA NESTING BOXES,2,2010-12-01 11:00:00,,17850.0,United Kingdom",  # no price
]


GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def _flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in GENRES)


def make_movielens(root: Path, *, bad: bool = False) -> Path:
    """A tiny ml-100k: 3 movies (one with a Latin-1 title), 3 users, 8 ratings, folds u1 and u2."""
    root.mkdir(parents=True, exist_ok=True)
    write(root / "u.genre", "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)))
    toy_genres = _flags("Animation", "Children's", "Comedy")
    items = [
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{toy_genres}",
        f"2|Café au lait (1993)|01-Jan-1993||http://x|{_flags('Comedy')}",
        f"3|unknown||||{_flags('unknown')}",
    ]
    write(root / "u.item", "\n".join(items) + "\n", encoding="latin-1")
    write(root / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n")
    ratings = [(1, 1, 5, 874965758), (1, 2, 3, 876893171), (2, 1, 4, 878542960), (2, 3, 2, 876893119),
               (3, 2, 1, 889751712), (3, 1, 4, 875071561), (1, 3, 2, 875072484), (2, 2, 3, 878542420)]
    lines = [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in ratings]
    if bad:
        lines += ["4\t1\tfive\t875072484", "4\t1\t3", "4\t2\t3\tnoon"]
    write(root / "u.data", "\n".join(lines) + "\n")
    for k, (train, test) in enumerate([(range(0, 6), range(6, 8)), (range(2, 8), range(0, 2))], start=1):
        write(root / f"u{k}.base", "".join(lines[i] + "\n" for i in train))
        write(root / f"u{k}.test", "".join(lines[i] + "\n" for i in test))
    return root


def make_s3rec(root: Path, *, bad: bool = False, attributes: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = ["1 1 2 3 4", "2 5 1 6", "3 2 2 7"]
    if bad:
        lines.insert(1, "9")  # a user without items
    path = write(root / "Toy.txt", "\n".join(lines) + "\n")
    if attributes:
        write(root / "Toy_item2attributes.json", json.dumps({"1": [1, 2], "2": [3], "7": [1], "8": [4]}))
    return path


def make_otto(root: Path, *, bad: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    sessions = [
        {"session": 0, "events": [{"aid": 11, "ts": 1659304800025, "type": "clicks"},
                                  {"aid": 12, "ts": 1659304904511, "type": "carts"},
                                  {"aid": 12, "ts": 1659305000000, "type": "orders"}]},
        {"session": 1, "events": [{"aid": 11, "ts": 1659304800999, "type": "clicks"},
                                  {"aid": 13, "ts": "soon", "type": "clicks"},
                                  {"aid": 14, "ts": 1659304801000, "type": "wishlist"}]},
    ]
    lines = [json.dumps(s) for s in sessions]
    if bad:
        lines += ['{"session": 2, "events": [', '{"session": 3, "events": "none"}']
    return write(root / "otto.jsonl", "\n".join(lines) + "\n")


def make_cdrib(root: Path, *, bad: bool = False) -> Path:
    """Two domains; users 0..2 are shared (the largest valid/test user is 2), 3 and 4 are domain-only."""
    for folder, train, valid, test in (
        ("game_video", ["0\t0", "0\t1", "1\t1", "3\t2", "4\t0", "4\t2"], ["2\t0"], ["2\t1"]),
        ("video_game", ["0\t5", "1\t5", "2\t6", "2\t7", "3\t6", "4\t7"], ["1\t6"], ["0\t7"]),
    ):
        d = root / folder
        d.mkdir(parents=True, exist_ok=True)
        rows = train + (["x\t1", "5"] if bad and folder == "game_video" else [])
        write(d / "train.txt", "\n".join(rows) + "\n")
        write(d / "valid.txt", "\n".join(valid) + "\n")
        write(d / "test.txt", "\n".join(test) + "\n")
        write(d / "new_reindex.txt", "99\t99\t1\n")  # another id space: never read
    return root
