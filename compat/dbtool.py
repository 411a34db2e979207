"""Database chores for scripts/compat.sh: reset a database, dump its schema.

    python dbtool.py reset URL     drop and recreate (SQLite: delete the file)
    python dbtool.py schema URL    print the schema (SQLite: sqlite_master SQL;
                                   MariaDB: SHOW CREATE TABLE of every table)
    python dbtool.py dropdb URL    drop (MariaDB) / delete (SQLite)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compat_project import dburl  # noqa: E402


def _mysql_server(info):
    import MySQLdb  # pylint: disable=import-outside-toplevel

    return MySQLdb.connect(
        host=info["host"], port=int(info["port"]), user=info["user"], passwd=info["password"], charset="utf8mb4"
    )


def charset_collation():
    return (
        os.environ.get("COMPAT_MYSQL_CHARSET", dburl.DEFAULT_MYSQL_CHARSET),
        os.environ.get("COMPAT_MYSQL_COLLATION", dburl.DEFAULT_MYSQL_COLLATION),
    )


def reset(url):
    kind, info = dburl.parse(url)
    if kind == "sqlite":
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                os.remove(info["path"] + suffix)
            except FileNotFoundError:
                pass
        os.makedirs(os.path.dirname(os.path.abspath(info["path"])), exist_ok=True)
        return
    if not info["name"]:
        raise SystemExit(f"compat: {url} names no database")
    charset, collation = charset_collation()
    conn = _mysql_server(info)
    try:
        cur = conn.cursor()
        cur.execute(f"DROP DATABASE IF EXISTS `{info['name']}`")
        cur.execute(f"CREATE DATABASE `{info['name']}` CHARACTER SET {charset} COLLATE {collation}")
    finally:
        conn.close()


def dropdb(url):
    kind, info = dburl.parse(url)
    if kind == "sqlite":
        reset(url)
        return
    conn = _mysql_server(info)
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{info['name']}`")
    finally:
        conn.close()


def schema(url, out=sys.stdout):
    kind, info = dburl.parse(url)
    if kind == "sqlite":
        import sqlite3  # pylint: disable=import-outside-toplevel

        conn = sqlite3.connect(info["path"])
        try:
            rows = conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                "AND name NOT LIKE 'sqlite_%' ORDER BY tbl_name, type DESC, name"
            ).fetchall()
        finally:
            conn.close()
        for _type, _name, sql in rows:
            out.write(sql.strip() + ";\n")
        return
    conn = _mysql_server(info)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
            "WHERE SCHEMA_NAME = %s",
            (info["name"],),
        )
        cs, coll = cur.fetchone()
        cur.execute("SELECT VERSION()")
        out.write(f"-- server {cur.fetchone()[0]}; database charset {cs}, collation {coll}\n")
        cur.execute(f"USE `{info['name']}`")
        cur.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
        tables = sorted(r[0] for r in cur.fetchall())
        for table in tables:
            cur.execute(f"SHOW CREATE TABLE `{table}`")
            out.write(cur.fetchone()[1].strip() + ";\n\n")
    finally:
        conn.close()


def main(argv):
    if len(argv) != 3 or argv[1] not in ("reset", "schema", "dropdb"):
        raise SystemExit(__doc__)
    {"reset": reset, "schema": schema, "dropdb": dropdb}[argv[1]](argv[2])


if __name__ == "__main__":
    main(sys.argv)
