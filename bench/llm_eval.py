"""Evaluate `osiris generate` on realistic requests over three fixture databases.

An e-commerce shop (MySQL), a movies catalogue (PostgreSQL), product events (DuckDB and
Parquet files), and two Supabase projects; 32 requests, among them the plan's three acceptance
prompts (Supabase → Supabase append, Supabase → Supabase merge, MySQL → Supabase merge). Each
request goes through the real front end: registry context, the aliases, the fixture schema
ranked against the request, the forced tool, safe fixes, the repair loop. Measured per request
and in total: valid on the first try (the model's answer as is), valid after the safe fixes
(no model call), valid after repair, model calls, input/output/cached tokens.

With ANTHROPIC_API_KEY set it calls the API (model: --model, $OSIRIS_LLM_MODEL or the
default); --record FILE keeps the answers so that a later run can --replay them. Without a key
it runs the same harness, the real SDK included, against the local Messages API stand-in
(tests/llm_standin.py) replaying scripted answers: a correct pipeline per request with one of
the failure classes upstream saw injected into the first answer (legacy keys, invented field,
wrong mode, two inputs read as one, missing needs, a query reading an undeclared step), then
the correct one. That tests the harness, not a model.

Usage: python bench/llm_eval.py [--max-attempts N] [--only ID…] [--record F | --replay F] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

CONNECTIONS = """version: 1
connections:
  mysql:
    shop: {host: "${SHOP_HOST:-127.0.0.1}", database: shop, user: osiris, password: "${SHOP_PASSWORD}"}
  postgres:
    movies: {dsn: "${MOVIES_DSN}"}
    dwh: {dsn: "${DWH_DSN}", default: true}
  supabase:
    main: {dsn: "${SUPABASE_MAIN_DSN}", default: true}
    analytics: {dsn: "${SUPABASE_ANALYTICS_DSN}"}
  duckdb:
    warehouse: {path: output/warehouse.duckdb, default: true}
    events: {path: data/events.duckdb}
"""

# -- the fixture databases, as discovery would describe them ----------------------------------------


def catalogs() -> dict[str, Any]:
    from osiris.runtime.catalog.model import Catalog, Column, ForeignKey, Table

    def t(
        name: str,
        schema: str | None,
        cols: str,
        pk: str = "id",
        fks: str = "",
        rows: int = 0,
        sample: dict[str, Any] | None = None,
    ) -> Table:
        columns = []
        for spec in cols.split(","):
            name_, _, db_type = spec.strip().partition(" ")
            columns.append(Column(name_, db_type or "int", "int64", name_ not in pk.split("+")))
        keys = tuple(
            ForeignKey((c,), schema, ref.split(".")[0], (ref.split(".")[1],))
            for c, _, ref in (f.partition("->") for f in fks.split(",") if f)
        )
        return Table(
            name,
            schema,
            tuple(columns),
            primary_key=tuple(pk.split("+")),
            foreign_keys=keys,
            row_estimate=rows,
            samples=(sample,) if sample else (),
        )

    shop = Catalog(
        "mysql",
        (
            t(
                "customers",
                "shop",
                "id,email varchar(255),name varchar(120),country char(2),created_at datetime",
                rows=52_000,
                sample={"id": 1, "email": "***@***.com", "name": "***", "country": "DE"},
            ),
            t(
                "orders",
                "shop",
                "id,customer_id,status varchar(20),total decimal(12,2),created_at datetime",
                fks="customer_id->customers.id",
                rows=1_200_000,
            ),
            t(
                "order_items",
                "shop",
                "order_id,product_id,quantity,price decimal(10,2)",
                pk="order_id+product_id",
                fks="order_id->orders.id,product_id->products.id",
                rows=3_900_000,
            ),
            t(
                "products",
                "shop",
                "id,sku varchar(40),name varchar(200),category varchar(60),price decimal(10,2)",
                rows=8_000,
            ),
            t(
                "payments",
                "shop",
                "id,order_id,method varchar(20),status varchar(20),amount decimal(12,2),paid_at datetime",
                fks="order_id->orders.id",
                rows=1_150_000,
            ),
            t(
                "shipments",
                "shop",
                "id,order_id,carrier varchar(40),shipped_at datetime,delivered_at datetime",
                fks="order_id->orders.id",
                rows=1_000_000,
            ),
            *(
                t(f"legacy_import_{i}", "shop", "id,payload text,imported_at datetime", rows=10)
                for i in range(30)
            ),
        ),
    )
    movies = Catalog(
        "postgres",
        (
            t(
                "movies",
                "public",
                "id,title text,release_year,director_id,runtime_minutes",
                fks="director_id->people.id",
                rows=45_000,
            ),
            t("people", "public", "id,name text,born date", rows=120_000),
            t(
                "ratings",
                "public",
                "user_id,movie_id,rating numeric(2,1),rated_at timestamptz",
                pk="user_id+movie_id",
                fks="movie_id->movies.id",
                rows=26_000_000,
            ),
            t("genres", "public", "id,name text", rows=20),
            t(
                "movie_genres",
                "public",
                "movie_id,genre_id",
                pk="movie_id+genre_id",
                fks="movie_id->movies.id,genre_id->genres.id",
                rows=90_000,
            ),
        ),
    )
    events = Catalog(
        "duckdb",
        (
            t(
                "events",
                "main",
                "event_id,user_id,product_id,event_type VARCHAR,session_id VARCHAR,ts TIMESTAMP",
                pk="event_id",
                rows=48_000_000,
                sample={
                    "event_id": 1,
                    "user_id": 9,
                    "product_id": 3,
                    "event_type": "view",
                    "ts": "2024-05-01 10:00:00",
                },
            ),
            t(
                "products",
                "main",
                "product_id,name VARCHAR,category VARCHAR",
                pk="product_id",
                rows=8_000,
            ),
        ),
    )
    main = Catalog(
        "supabase",
        (
            t(
                "profiles",
                "public",
                "id uuid,email text,plan text,created_at timestamptz",
                rows=90_000,
            ),
            t(
                "events",
                "public",
                "id,profile_id uuid,name text,created_at timestamptz",
                rows=2_000_000,
            ),
        ),
    )
    analytics = Catalog(
        "supabase",
        (
            t(
                "profiles",
                "public",
                "id uuid,email text,plan text,created_at timestamptz",
                rows=88_000,
            ),
            t(
                "events",
                "public",
                "id,profile_id uuid,name text,created_at timestamptz",
                rows=1_900_000,
            ),
            t("daily_signups", "public", "day date,signups", pk="day", rows=700),
        ),
    )
    return {
        "@mysql.shop": shop,
        "@postgres.movies": movies,
        "@duckdb.events": events,
        "@supabase.main": main,
        "@supabase.analytics": analytics,
    }


# -- the requests and a correct pipeline for each (for the scripted dry run) -------------------------


def ext(sid: str, component: str, **config: Any) -> dict[str, Any]:
    return {"id": sid, "component": component, "mode": "read", "config": config}


def sql(sid: str, needs: list[str], query: str) -> dict[str, Any]:
    return {
        "id": sid,
        "component": "duckdb.processor",
        "mode": "transform",
        "needs": needs,
        "config": {"query": query},
    }


def out(sid: str, component: str, need: str, **config: Any) -> dict[str, Any]:
    return {"id": sid, "component": component, "mode": "write", "needs": [need], "config": config}


def pipe(name: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "steps": list(steps)}


SHOP = {"connection": "@mysql.shop"}
MOVIES = {"connection": "@postgres.movies"}
EVENTS = {"connection": "@duckdb.events"}
MAIN = {"connection": "@supabase.main"}
ANALYTICS = {"connection": "@supabase.analytics"}
WAREHOUSE = {"connection": "@duckdb.warehouse"}
DWH = {"connection": "@postgres.dwh"}

CASES: list[tuple[str, str, list[str], dict[str, Any]]] = [
    (
        "accept-supabase-append",
        "Copy new rows of the events table from Supabase main into the events table of Supabase analytics, appending",
        ["@supabase.main"],
        pipe(
            "events-main-to-analytics",
            ext("extract-events", "supabase.extractor", **MAIN, table="events"),
            out(
                "load-events",
                "supabase.writer",
                "extract-events",
                **ANALYTICS,
                table="events",
                write_mode="append",
            ),
        ),
    ),
    (
        "accept-supabase-merge",
        "Merge the profiles table from Supabase main into Supabase analytics by id",
        ["@supabase.main"],
        pipe(
            "profiles-merge",
            ext("extract-profiles", "supabase.extractor", **MAIN, table="profiles"),
            out(
                "merge-profiles",
                "supabase.writer",
                "extract-profiles",
                **ANALYTICS,
                table="profiles",
                write_mode="upsert",
                primary_key=["id"],
            ),
        ),
    ),
    (
        "accept-mysql-supabase-merge",
        "Merge the customers of the MySQL shop database into Supabase main, matching on id",
        ["@mysql.shop"],
        pipe(
            "customers-to-supabase",
            ext("extract-customers", "mysql.extractor", **SHOP, table="customers"),
            out(
                "merge-customers",
                "supabase.writer",
                "extract-customers",
                **MAIN,
                table="customers",
                write_mode="upsert",
                primary_key=["id"],
            ),
        ),
    ),
    (
        "shop-orders-append",
        "Append all shop orders to Supabase main",
        ["@mysql.shop"],
        pipe(
            "orders-to-supabase",
            ext("extract-orders", "mysql.extractor", **SHOP, table="orders"),
            out(
                "load-orders",
                "supabase.writer",
                "extract-orders",
                **MAIN,
                table="orders",
                write_mode="append",
            ),
        ),
    ),
    (
        "shop-daily-revenue",
        "Daily revenue from shop orders into the dwh table daily_revenue, replacing it",
        ["@mysql.shop"],
        pipe(
            "daily-revenue",
            ext("extract-orders", "mysql.extractor", **SHOP, table="orders"),
            sql(
                "daily",
                ["extract-orders"],
                'SELECT CAST(created_at AS DATE) AS day, sum(total) AS revenue FROM "extract-orders" GROUP BY 1',
            ),
            out(
                "load-daily",
                "postgres.writer",
                "daily",
                **DWH,
                table="daily_revenue",
                write_mode="replace",
            ),
        ),
    ),
    (
        "shop-products-parquet",
        "Export the product catalogue to output/products.parquet",
        ["@mysql.shop"],
        pipe(
            "products-export",
            ext("extract-products", "mysql.extractor", **SHOP, table="products"),
            out(
                "write-products",
                "filesystem.parquet_writer",
                "extract-products",
                path="output/products.parquet",
            ),
        ),
    ),
    (
        "shop-order-facts",
        "Join orders with customers and upsert them into Supabase order_facts by order id",
        ["@mysql.shop"],
        pipe(
            "order-facts",
            ext("extract-orders", "mysql.extractor", **SHOP, table="orders"),
            ext("extract-customers", "mysql.extractor", **SHOP, table="customers"),
            sql(
                "join",
                ["extract-orders", "extract-customers"],
                'SELECT o.id AS order_id, o.total, c.email, c.country FROM "extract-orders" o '
                'JOIN "extract-customers" c ON c.id = o.customer_id',
            ),
            out(
                "load-facts",
                "supabase.writer",
                "join",
                **MAIN,
                table="order_facts",
                write_mode="upsert",
                primary_key=["order_id"],
            ),
        ),
    ),
    (
        "shop-top-customers",
        "Top 10 customers by total spend to output/top_customers.csv",
        ["@mysql.shop"],
        pipe(
            "top-customers",
            ext("extract-orders", "mysql.extractor", **SHOP, table="orders"),
            sql(
                "top",
                ["extract-orders"],
                'SELECT customer_id, sum(total) AS spend FROM "extract-orders" GROUP BY 1 ORDER BY 2 DESC LIMIT 10',
            ),
            out("write-top", "filesystem.csv_writer", "top", path="output/top_customers.csv"),
        ),
    ),
    (
        "shop-failed-payments",
        "Write the failed payments to a CSV file",
        ["@mysql.shop"],
        pipe(
            "failed-payments",
            ext(
                "extract-payments",
                "mysql.extractor",
                **SHOP,
                table="payments",
                where="status = 'failed'",
            ),
            out(
                "write-failed",
                "filesystem.csv_writer",
                "extract-payments",
                path="output/failed_payments.csv",
            ),
        ),
    ),
    (
        "shop-items-duckdb",
        "Load order_items into the duckdb warehouse",
        ["@mysql.shop"],
        pipe(
            "items-to-warehouse",
            ext("extract-items", "mysql.extractor", **SHOP, table="order_items"),
            out(
                "load-items",
                "duckdb.writer",
                "extract-items",
                **WAREHOUSE,
                table="order_items",
                write_mode="replace",
            ),
        ),
    ),
    (
        "shop-recent-orders",
        "Orders created since a date given as a param into Supabase, appending",
        ["@mysql.shop"],
        {
            **pipe(
                "recent-orders",
                ext(
                    "extract-orders",
                    "mysql.extractor",
                    **SHOP,
                    table="orders",
                    where="created_at >= '${params.since}'",
                ),
                out(
                    "load-orders",
                    "supabase.writer",
                    "extract-orders",
                    **MAIN,
                    table="orders",
                    write_mode="append",
                ),
            ),
            "params": {"since": {"type": "string", "default": "2024-01-01"}},
        },
    ),
    (
        "shop-shipments-per-carrier",
        "Count shipments per carrier into the dwh",
        ["@mysql.shop"],
        pipe(
            "shipments-per-carrier",
            ext("extract-shipments", "mysql.extractor", **SHOP, table="shipments"),
            sql(
                "per-carrier",
                ["extract-shipments"],
                'SELECT carrier, count(*) AS shipments FROM "extract-shipments" GROUP BY carrier',
            ),
            out(
                "load-carriers",
                "postgres.writer",
                "per-carrier",
                **DWH,
                table="shipments_per_carrier",
                write_mode="replace",
            ),
        ),
    ),
    (
        "supabase-daily-signups",
        "Replace analytics daily_signups with the number of profiles created per day in main",
        ["@supabase.main"],
        pipe(
            "daily-signups",
            ext("extract-profiles", "supabase.extractor", **MAIN, table="profiles"),
            sql(
                "per-day",
                ["extract-profiles"],
                'SELECT CAST(created_at AS DATE) AS day, count(*) AS signups FROM "extract-profiles" GROUP BY 1',
            ),
            out(
                "load-signups",
                "supabase.writer",
                "per-day",
                **ANALYTICS,
                table="daily_signups",
                write_mode="replace",
            ),
        ),
    ),
    (
        "movies-avg-rating",
        "Average rating per movie into the duckdb warehouse",
        ["@postgres.movies"],
        pipe(
            "avg-rating",
            ext("extract-ratings", "postgres.extractor", **MOVIES, table="ratings"),
            sql(
                "avg",
                ["extract-ratings"],
                'SELECT movie_id, avg(rating) AS avg_rating, count(*) AS votes FROM "extract-ratings" GROUP BY 1',
            ),
            out(
                "load-avg",
                "duckdb.writer",
                "avg",
                **WAREHOUSE,
                table="movie_ratings",
                write_mode="replace",
            ),
        ),
    ),
    (
        "movies-genres-parquet",
        "Movies released after 2000 with their genre names to a parquet file",
        ["@postgres.movies"],
        pipe(
            "modern-movies",
            ext(
                "extract-movies",
                "postgres.extractor",
                **MOVIES,
                table="movies",
                where="release_year > 2000",
            ),
            ext("extract-links", "postgres.extractor", **MOVIES, table="movie_genres"),
            ext("extract-genres", "postgres.extractor", **MOVIES, table="genres"),
            sql(
                "with-genres",
                ["extract-movies", "extract-links", "extract-genres"],
                'SELECT m.id, m.title, m.release_year, g.name AS genre FROM "extract-movies" m '
                'JOIN "extract-links" l ON l.movie_id = m.id JOIN "extract-genres" g ON g.id = l.genre_id',
            ),
            out(
                "write-movies",
                "filesystem.parquet_writer",
                "with-genres",
                path="output/movies.parquet",
            ),
        ),
    ),
    (
        "movies-ratings-upsert",
        "Upsert the ratings into Supabase analytics on user_id and movie_id",
        ["@postgres.movies"],
        pipe(
            "ratings-sync",
            ext("extract-ratings", "postgres.extractor", **MOVIES, table="ratings"),
            out(
                "upsert-ratings",
                "supabase.writer",
                "extract-ratings",
                **ANALYTICS,
                table="ratings",
                write_mode="upsert",
                primary_key=["user_id", "movie_id"],
            ),
        ),
    ),
    (
        "movies-busy-directors",
        "Directors with more than 5 movies to a CSV",
        ["@postgres.movies"],
        pipe(
            "busy-directors",
            ext("extract-movies", "postgres.extractor", **MOVIES, table="movies"),
            ext("extract-people", "postgres.extractor", **MOVIES, table="people"),
            sql(
                "directors",
                ["extract-movies", "extract-people"],
                'SELECT p.name, count(*) AS movies FROM "extract-movies" m JOIN "extract-people" p '
                "ON p.id = m.director_id GROUP BY p.name HAVING count(*) > 5",
            ),
            out(
                "write-directors", "filesystem.csv_writer", "directors", path="output/directors.csv"
            ),
        ),
    ),
    (
        "movies-top-100",
        "The 100 best rated movies with their titles into the dwh",
        ["@postgres.movies"],
        pipe(
            "top-movies",
            ext("extract-movies", "postgres.extractor", **MOVIES, table="movies"),
            ext("extract-ratings", "postgres.extractor", **MOVIES, table="ratings"),
            sql(
                "top",
                ["extract-movies", "extract-ratings"],
                'SELECT m.id, m.title, avg(r.rating) AS score FROM "extract-movies" m JOIN "extract-ratings" r '
                "ON r.movie_id = m.id GROUP BY m.id, m.title ORDER BY score DESC LIMIT 100",
            ),
            out(
                "load-top",
                "postgres.writer",
                "top",
                **DWH,
                table="top_movies",
                write_mode="replace",
            ),
        ),
    ),
    (
        "movies-genres-csv",
        "Export the genres to a CSV",
        ["@postgres.movies"],
        pipe(
            "genres-export",
            ext("extract-genres", "postgres.extractor", **MOVIES, table="genres"),
            out(
                "write-genres", "filesystem.csv_writer", "extract-genres", path="output/genres.csv"
            ),
        ),
    ),
    (
        "movies-people-to-shop",
        "Replace the shop's staging_people table with the people of the movies database",
        ["@postgres.movies"],
        pipe(
            "people-staging",
            ext("extract-people", "postgres.extractor", **MOVIES, table="people"),
            out(
                "load-people",
                "mysql.writer",
                "extract-people",
                **SHOP,
                table="staging_people",
                write_mode="replace",
            ),
        ),
    ),
    (
        "events-dau-supabase",
        "Daily active users from the product events into Supabase analytics",
        ["@duckdb.events"],
        pipe(
            "dau",
            ext("extract-events", "duckdb.extractor", **EVENTS, table="events"),
            sql(
                "dau",
                ["extract-events"],
                'SELECT CAST(ts AS DATE) AS day, count(DISTINCT user_id) AS dau FROM "extract-events" GROUP BY 1',
            ),
            out(
                "load-dau",
                "supabase.writer",
                "dau",
                **ANALYTICS,
                table="daily_active_users",
                write_mode="upsert",
                primary_key=["day"],
            ),
        ),
    ),
    (
        "events-per-product",
        "Events per product and day into the duckdb warehouse",
        ["@duckdb.events"],
        pipe(
            "events-per-product",
            ext("extract-events", "duckdb.extractor", **EVENTS, table="events"),
            sql(
                "per-product",
                ["extract-events"],
                'SELECT product_id, CAST(ts AS DATE) AS day, count(*) AS events FROM "extract-events" GROUP BY 1, 2',
            ),
            out(
                "load-counts",
                "duckdb.writer",
                "per-product",
                **WAREHOUSE,
                table="product_events_daily",
                write_mode="replace",
            ),
        ),
    ),
    (
        "events-funnel",
        "Funnel counts (view, cart, purchase) per product into the dwh",
        ["@duckdb.events"],
        pipe(
            "funnel",
            ext("extract-events", "duckdb.extractor", **EVENTS, table="events"),
            sql(
                "funnel",
                ["extract-events"],
                "SELECT product_id, count(*) FILTER (WHERE event_type = 'view') AS views, "
                "count(*) FILTER (WHERE event_type = 'cart') AS carts, "
                "count(*) FILTER (WHERE event_type = 'purchase') AS purchases "
                'FROM "extract-events" GROUP BY product_id',
            ),
            out(
                "load-funnel",
                "postgres.writer",
                "funnel",
                **DWH,
                table="product_funnel",
                write_mode="replace",
            ),
        ),
    ),
    (
        "events-csv-to-parquet",
        "Convert data/events.csv to parquet",
        [],
        pipe(
            "events-to-parquet",
            ext("read-events", "filesystem.csv_extractor", path="data/events.csv"),
            out(
                "write-events",
                "filesystem.parquet_writer",
                "read-events",
                path="output/events.parquet",
            ),
        ),
    ),
    (
        "events-user-counts",
        "Merge event counts per user into Supabase main by user_id",
        ["@duckdb.events"],
        pipe(
            "user-counts",
            ext("extract-events", "duckdb.extractor", **EVENTS, table="events"),
            sql(
                "per-user",
                ["extract-events"],
                'SELECT user_id, count(*) AS events FROM "extract-events" GROUP BY user_id',
            ),
            out(
                "merge-counts",
                "supabase.writer",
                "per-user",
                **MAIN,
                table="user_event_counts",
                write_mode="upsert",
                primary_key=["user_id"],
            ),
        ),
    ),
    (
        "events-long-sessions",
        "Sessions longer than 30 minutes to a CSV",
        ["@duckdb.events"],
        pipe(
            "long-sessions",
            ext("extract-events", "duckdb.extractor", **EVENTS, table="events"),
            sql(
                "sessions",
                ["extract-events"],
                'SELECT session_id, min(ts) AS started, max(ts) AS ended FROM "extract-events" '
                "GROUP BY session_id HAVING max(ts) - min(ts) > INTERVAL 30 MINUTE",
            ),
            out(
                "write-sessions",
                "filesystem.csv_writer",
                "sessions",
                path="output/long_sessions.csv",
            ),
        ),
    ),
    (
        "events-conversion",
        "Conversion rate per product category: products from the shop joined with the events, into the warehouse",
        ["@mysql.shop", "@duckdb.events"],
        pipe(
            "conversion",
            ext("extract-products", "mysql.extractor", **SHOP, table="products"),
            ext("extract-events", "duckdb.extractor", **EVENTS, table="events"),
            sql(
                "conversion",
                ["extract-products", "extract-events"],
                "SELECT p.category, avg(CASE WHEN e.event_type = 'purchase' THEN 1 ELSE 0 END) AS rate "
                'FROM "extract-events" e JOIN "extract-products" p ON p.id = e.product_id GROUP BY p.category',
            ),
            out(
                "load-conversion",
                "duckdb.writer",
                "conversion",
                **WAREHOUSE,
                table="category_conversion",
                write_mode="replace",
            ),
        ),
    ),
    (
        "events-archive",
        "Append yesterday's events to the shop's events_archive table",
        ["@duckdb.events"],
        pipe(
            "events-archive",
            ext(
                "extract-events",
                "duckdb.extractor",
                **EVENTS,
                table="events",
                where="ts >= current_date - INTERVAL 1 DAY AND ts < current_date",
            ),
            out(
                "archive",
                "mysql.writer",
                "extract-events",
                **SHOP,
                table="events_archive",
                write_mode="append",
            ),
        ),
    ),
    (
        "events-daily-parquet",
        "Write the daily event totals to Parquet partitioned by day",
        ["@duckdb.events"],
        pipe(
            "daily-totals",
            ext("extract-events", "duckdb.extractor", **EVENTS, table="events"),
            sql(
                "daily",
                ["extract-events"],
                'SELECT CAST(ts AS DATE) AS day, event_type, count(*) AS events FROM "extract-events" GROUP BY 1, 2',
            ),
            out(
                "write-daily",
                "filesystem.parquet_writer",
                "daily",
                path="output/daily_totals",
                partition_by=["day"],
            ),
        ),
    ),
    (
        "events-purchases-upsert",
        "Upsert purchase events into Supabase purchases by event_id",
        ["@duckdb.events"],
        pipe(
            "purchases",
            ext(
                "extract-purchases",
                "duckdb.extractor",
                **EVENTS,
                table="events",
                where="event_type = 'purchase'",
            ),
            out(
                "upsert-purchases",
                "supabase.writer",
                "extract-purchases",
                **MAIN,
                table="purchases",
                write_mode="upsert",
                primary_key=["event_id"],
            ),
        ),
    ),
    (
        "events-top-products",
        "Refresh the analytics top_products table (replace) with the 20 most viewed products",
        ["@duckdb.events"],
        pipe(
            "top-products",
            ext("extract-events", "duckdb.extractor", **EVENTS, table="events"),
            sql(
                "top",
                ["extract-events"],
                "SELECT product_id, count(*) AS views FROM \"extract-events\" WHERE event_type = 'view' "
                "GROUP BY 1 ORDER BY 2 DESC LIMIT 20",
            ),
            out(
                "load-top",
                "supabase.writer",
                "top",
                **ANALYTICS,
                table="top_products",
                write_mode="replace",
            ),
        ),
    ),
    (
        "shop-orders-two-targets",
        "Copy the orders to Supabase and archive them to parquet as well",
        ["@mysql.shop"],
        pipe(
            "orders-two-targets",
            ext("extract-orders", "mysql.extractor", **SHOP, table="orders"),
            out(
                "load-orders",
                "supabase.writer",
                "extract-orders",
                **MAIN,
                table="orders",
                write_mode="append",
            ),
            out(
                "archive-orders",
                "filesystem.parquet_writer",
                "extract-orders",
                path="output/orders_archive",
            ),
        ),
    ),
]


# -- the failure classes upstream saw, injected into the first scripted answer ------------------------


def _writer(p: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in reversed(p["steps"]) if s["mode"] == "write")


def legacy_keys(p: dict[str, Any]) -> None:
    p["version"] = "0.1.0"
    for step in p["steps"]:
        if "needs" in step:
            step["depends_on"] = step.pop("needs")


def invented_field(p: dict[str, Any]) -> None:
    _writer(p)["config"]["if_exists"] = "append"


def wrong_mode(p: dict[str, Any]) -> None:
    _writer(p)["mode"] = "upsert"  # upstream's write mode where the step mode belongs


def missing_needs(p: dict[str, Any]) -> None:
    _writer(p).pop("needs")


def two_inputs_as_one(p: dict[str, Any]) -> None:
    procs = [s for s in p["steps"] if s["component"] == "duckdb.processor"]
    if procs and len(procs[0]["needs"]) > 1:
        procs[0]["config"]["query"] = "SELECT * FROM input"
    else:
        invented_field(p)


def undeclared_read(p: dict[str, Any]) -> None:
    procs = [s for s in p["steps"] if s["component"] == "duckdb.processor"]
    if procs and len(procs[0]["needs"]) > 1:
        procs[0]["needs"] = procs[0]["needs"][:1]  # the query still reads the others: a safe fix
    else:
        legacy_keys(p)


def misspelt_field(p: dict[str, Any]) -> None:
    config = _writer(p)["config"]
    if "write_mode" in config:
        config["write_mdoe"] = config.pop("write_mode")
    else:
        wrong_mode(p)


MISTAKES: list[Callable[[dict[str, Any]], None] | None] = [
    None,
    legacy_keys,
    invented_field,
    wrong_mode,
    missing_needs,
    two_inputs_as_one,
    undeclared_read,
    misspelt_field,
]


def scripted_answers(index: int, correct: dict[str, Any]) -> list[dict[str, Any]]:
    mistake = MISTAKES[index % len(MISTAKES)]
    if mistake is None:
        return [correct]
    first = copy.deepcopy(correct)
    mistake(first)
    return [first, correct]


# -- the harness ---------------------------------------------------------------------------------------


def run_case(
    session: Any,
    case_id: str,
    request: str,
    discover: list[str],
    max_attempts: int,
    all_catalogs: dict[str, Any],
    budget: int,
) -> dict[str, Any]:
    from osiris.compiler.frontend import check_text
    from osiris.compiler.llm.rank import rank_tables

    session.selection = (
        rank_tables(request, [(ref, all_catalogs[ref]) for ref in discover], budget)
        if discover
        else None
    )
    outcome = session.generate(request, file=f"{case_id}.oml", max_attempts=max_attempts)
    first = outcome.attempts[0]
    first_try = (
        bool(first.proposed)
        and check_text(
            first.proposed, registry=session.registry, connections=session.connections
        ).ok
    )
    u = outcome.usage
    return {
        "id": case_id,
        "first_try": first_try,
        "after_fixes": first.ok,
        "after_repair": outcome.ok,
        "model_calls": len(outcome.attempts),
        "fixed_by_rule": sorted({f.code for a in outcome.attempts for f in a.fixed_by_rule}),
        "errors_left": outcome.best.errors,
        "tables_sent": len(session.selection.tables) if session.selection else 0,
        "input_tokens": u.input,
        "output_tokens": u.output,
        "cache_read_tokens": u.cache_read,
        "seconds": round(outcome.seconds, 2),
        "answers": [a.tool_use["input"] if a.tool_use else None for a in outcome.attempts],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument("--only", nargs="*", metavar="ID", help="run only these cases")
    parser.add_argument("--model", help="model for the live run")
    parser.add_argument("--schema-budget", type=int, default=1000)
    parser.add_argument("--record", metavar="FILE", help="live: keep the model's answers in FILE")
    parser.add_argument("--replay", metavar="FILE", help="replay answers recorded with --record")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    from osiris.compiler.llm.client import has_key
    from osiris.compiler.llm.session import open_session

    cases = [c for c in CASES if not args.only or c[0] in args.only]
    live = has_key(os.environ) and not args.replay
    standin = None
    environ = dict(os.environ)
    if not live:
        from llm_standin import StandIn, tool_answer

        recorded = json.loads(Path(args.replay).read_text()) if args.replay else {}
        script = []
        for index, (case_id, _, _, correct) in enumerate(CASES):
            if case_id not in {c[0] for c in cases}:
                continue
            answers = recorded.get(case_id) or scripted_answers(index, correct)
            script.extend(tool_answer(a) for a in answers[: args.max_attempts])
        standin = StandIn(script=script).start()
        environ.update(ANTHROPIC_BASE_URL=standin.url, ANTHROPIC_API_KEY=standin.keys[0])
        environ.pop("ANTHROPIC_AUTH_TOKEN", None)
    all_catalogs = catalogs()
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "osiris_connections.yaml").write_text(CONNECTIONS)
            session = open_session(
                project_root=root,
                connections_path=root / "osiris_connections.yaml",
                environ=environ,
                model=args.model,
            )
            for case_id, request, discover, _ in cases:
                results.append(
                    run_case(
                        session,
                        case_id,
                        request,
                        discover,
                        args.max_attempts,
                        all_catalogs,
                        args.schema_budget,
                    )
                )
                if standin is not None:  # a case's unused scripted answers are skipped
                    done = results[-1]["model_calls"]
                    index = next(i for i, c in enumerate(CASES) if c[0] == case_id)
                    planned = len(scripted_answers(index, CASES[index][3])[: args.max_attempts])
                    del standin.script[: max(0, planned - done)]
    finally:
        if standin is not None:
            standin.stop()
    if args.record and live:
        Path(args.record).write_text(json.dumps({r["id"]: r["answers"] for r in results}, indent=1))
    report(results, live, session.model, args.json)
    return 0


def report(results: list[dict[str, Any]], live: bool, model: str, as_json: bool) -> None:
    n = len(results)

    def share(key: str) -> str:
        hits = sum(1 for r in results if r[key])
        return f"{hits}/{n} ({100 * hits / n:.0f} %)"

    totals = {
        k: sum(r[k] for r in results)
        for k in ("model_calls", "input_tokens", "output_tokens", "cache_read_tokens")
    }
    if as_json:
        print(
            json.dumps(
                {
                    "live": live,
                    "model": model,
                    "results": [{k: v for k, v in r.items() if k != "answers"} for r in results],
                    "totals": totals,
                },
                indent=1,
            )
        )
        return
    mode = (
        f"live, model {model}" if live else "dry run: scripted answers through the local stand-in"
    )
    print(f"osiris generate eval — {n} requests ({mode})")
    print(
        f"{'case':<30} {'1st':>4} {'fix':>4} {'rep':>4} {'calls':>5} {'tables':>6} {'in':>7} {'out':>6} {'cached':>7}  fixed by rule"
    )
    for r in results:
        print(
            f"{r['id']:<30} {'y' if r['first_try'] else '-':>4} {'y' if r['after_fixes'] else '-':>4} "
            f"{'y' if r['after_repair'] else '-':>4} {r['model_calls']:>5} {r['tables_sent']:>6} "
            f"{r['input_tokens']:>7} {r['output_tokens']:>6} {r['cache_read_tokens']:>7}  "
            f"{','.join(r['fixed_by_rule'])}"
        )
    print(
        f"valid on the first try: {share('first_try')}; after safe fixes: {share('after_fixes')}; "
        f"after repair: {share('after_repair')}"
    )
    print(
        f"model calls: {totals['model_calls']} ({totals['model_calls'] / n:.2f} per request); tokens in "
        f"{totals['input_tokens']}, out {totals['output_tokens']}, cached {totals['cache_read_tokens']}"
    )


if __name__ == "__main__":
    sys.exit(main())
