"""Turn COMPAT_DB_URL into a Django DATABASES entry.

    sqlite:////abs/path.db
    mysql://user:pass@host:port/dbname
"""
from urllib.parse import unquote, urlparse

# The collation Open edX compares course-team columns with on MySQL. Tutor's MySQL
# runs with a case-insensitive server default (utf8mb3_general_ci in older releases); we create
# the database as utf8mb4 + utf8mb4_unicode_ci, the other collation Open edX uses. Override with
# COMPAT_MYSQL_CHARSET / COMPAT_MYSQL_COLLATION.
DEFAULT_MYSQL_CHARSET = "utf8mb4"
DEFAULT_MYSQL_COLLATION = "utf8mb4_unicode_ci"


def parse(url):
    """Return (kind, info) where kind is 'sqlite' or 'mysql'."""
    u = urlparse(url)
    if u.scheme == "sqlite":
        # sqlite:////abs/path.db -> path "//abs/path.db"; sqlite:///rel.db -> "/rel.db"
        path = url[len("sqlite://"):]
        if path.startswith("//"):
            path = path[1:]
        elif path.startswith("/"):
            path = path[1:]
        return "sqlite", {"path": path}
    if u.scheme in ("mysql", "mariadb"):
        return "mysql", {
            "user": unquote(u.username or ""),
            "password": unquote(u.password or ""),
            "host": u.hostname or "127.0.0.1",
            "port": u.port or 3306,
            "name": u.path.lstrip("/"),
        }
    raise ValueError(f"unsupported COMPAT_DB_URL scheme: {url!r} (want sqlite:////path or mysql://...)")


def django_database(url):
    kind, info = parse(url)
    if kind == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": info["path"],
            # The Go binary writes the same file from another process: wait for its locks.
            "OPTIONS": {"timeout": 30},
        }
    return {
        "ENGINE": "django.db.backends.mysql",
        "NAME": info["name"],
        "USER": info["user"],
        "PASSWORD": info["password"],
        "HOST": info["host"],
        "PORT": str(info["port"]),
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {"CHARSET": DEFAULT_MYSQL_CHARSET, "COLLATION": DEFAULT_MYSQL_COLLATION},
    }
