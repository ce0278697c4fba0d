"""Regenerates the demo's sample data (orders.csv, customers.csv) deterministically: same bytes every time."""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "compiler" / "templates" / "project" / "data"
SEED = 20240601
FIRST = [
    "Ana",
    "Ben",
    "Chloé",
    "Dario",
    "Eva",
    "Femi",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kai",
    "Lena",
]
LAST = [
    "Novak",
    "Okafor",
    "Silva",
    "Berg",
    "Kowalski",
    "Tanaka",
    "Moreau",
    "Rossi",
    "Weber",
    "Costa",
]
COUNTRIES = ["DE", "FR", "IT", "ES", "PL", "NL", "SE", "PT"]
SEGMENTS = ["consumer", "small_business", "enterprise"]
PRODUCTS = {
    "notebook-a5": 4.50,
    "fountain-pen": 32.00,
    "ink-bottle": 9.90,
    "desk-lamp": 54.00,
    "paper-ream": 7.25,
    "stapler": 12.40,
    "backpack": 68.00,
}
STATUSES = ["paid"] * 6 + ["shipped"] * 3 + ["refunded", "cancelled"]


def customers(rng: random.Random, count: int = 40) -> list[dict[str, str]]:
    start = date(2022, 1, 1)
    rows = []
    for n in range(1, count + 1):
        rows.append(
            {
                "customer_id": f"C{n:04d}",
                "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                "country": rng.choice(COUNTRIES),
                "segment": rng.choice(SEGMENTS),
                "signup_date": (start + timedelta(days=rng.randrange(700))).isoformat(),
            }
        )
    return rows


def orders(rng: random.Random, customer_ids: list[str], count: int = 400) -> list[dict[str, str]]:
    start = date(2024, 1, 1)
    rows = []
    for n in range(1, count + 1):
        product = rng.choice(list(PRODUCTS))
        rows.append(
            {
                "order_id": str(100000 + n),
                "customer_id": rng.choice(customer_ids),
                "order_date": (start + timedelta(days=rng.randrange(180))).isoformat(),
                "product": product,
                "quantity": str(rng.randint(1, 6)),
                "unit_price": f"{PRODUCTS[product]:.2f}",
                "status": rng.choice(STATUSES),
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    rng = random.Random(SEED)
    people = customers(rng)
    write_csv(HERE / "customers.csv", people)
    write_csv(HERE / "orders.csv", orders(rng, [c["customer_id"] for c in people]))


if __name__ == "__main__":
    main()
