"""The ``steun`` command: init, server, demo, user, token and audit verbs."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from . import __version__
from . import audit as events
from .audit import AuditLog, verify_chain
from .auth import users as user_queries
from .auth.passwords import configure_from
from .auth.roles import Role
from .config import ServerConfig, load_config
from .errors import ApiError, SteunServerError
from .keys import b64url, load_keys
from .storage import Database

CLI_ACTOR = "steun cli"


def _config(args: argparse.Namespace) -> ServerConfig:
    overrides: dict[str, Any] = {}
    if getattr(args, "public_url", None):
        overrides["public_url"] = args.public_url
    config = load_config(args.data_dir, overrides=overrides)
    configure_from(config)
    return config


async def _with_db(config: ServerConfig, body: Callable[[Database], Awaitable[int]]) -> int:
    db = await Database.open(config.effective_database_url)
    try:
        await db.migrate()
        return await body(db)
    finally:
        await db.close()


# -- verbs -------------------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from .bootstrap import initialise

    config = _config(args)
    result = asyncio.run(
        initialise(config, admin_username=args.admin_username, hostnames=args.hostname or ())
    )
    print(f"Initialised {result.data_dir}")
    print(f"  org public key : {b64url(result.org_public_key)}")
    print(f"  TLS pin (SPKI) : {b64url(result.spki_sha256)}")
    print()
    print("The first admin account (this password is shown only now; change it after signing in):")
    print(f"  username: {result.admin_username}")
    print(f"  password: {result.admin_password}")
    print()
    print(f"Start the server with: steun server --data-dir {result.data_dir}")
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    from .app import run_forever

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["listen_host"] = args.host
    if args.port is not None:
        overrides["listen_port"] = args.port
    config = load_config(args.data_dir, overrides=overrides)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(run_forever(config))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run_demo(args.host, args.port, args.keep))


def cmd_user_add(args: argparse.Namespace) -> int:
    config = _config(args)

    async def body(db: Database) -> int:
        async with db.begin() as conn:
            user, password = await user_queries.create_user(
                conn, args.username, role=Role(args.role), display_name=args.display_name or ""
            )
        await AuditLog(db).emit(
            events.USER_CREATED,
            actor=CLI_ACTOR,
            data={"user_id": user.id, "username": user.username, "role": str(user.role)},
        )
        print(f"Created {user.username} ({user.role}). Password, shown once: {password}")
        return 0

    return asyncio.run(_with_db(config, body))


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def cmd_user_list(args: argparse.Namespace) -> int:
    config = _config(args)

    async def body(db: Database) -> int:
        async with db.connect() as conn:
            found = await user_queries.list_users(conn)
        print(f"{'id':>5}  {'username':<24} {'role':<11} {'totp':<5} {'disabled':<8} display name")
        for user in found:
            print(
                f"{user.id:>5}  {user.username:<24} {user.role!s:<11} {_yes(user.totp_enabled):<5} "
                f"{_yes(user.disabled):<8} {user.display_name}"
            )
        return 0

    return asyncio.run(_with_db(config, body))


def cmd_user_set_role(args: argparse.Namespace) -> int:
    config = _config(args)

    async def body(db: Database) -> int:
        async with db.begin() as conn:
            target = await user_queries.get_user_by_name(conn, args.username)
            before, after = await user_queries.update_user(conn, target.id, role=Role(args.role))
        if before.role != after.role:
            await AuditLog(db).emit(
                events.USER_ROLE_CHANGED,
                actor=CLI_ACTOR,
                data={
                    "user_id": after.id,
                    "username": after.username,
                    "from": str(before.role),
                    "to": str(after.role),
                },
            )
        print(f"{after.username}: {before.role} -> {after.role}")
        return 0

    return asyncio.run(_with_db(config, body))


def cmd_user_reset_password(args: argparse.Namespace) -> int:
    from .auth.passwords import generate_password
    from .storage.tables import web_sessions

    config = _config(args)

    async def body(db: Database) -> int:
        password = generate_password()
        async with db.begin() as conn:
            target = await user_queries.get_user_by_name(conn, args.username)
            await user_queries.set_password(conn, target.id, password)
            if args.reset_totp:
                await user_queries.disable_totp(conn, target.id)
            await conn.execute(web_sessions.delete().where(web_sessions.c.user_id == target.id))
        await AuditLog(db).emit(
            "user.password_reset",
            actor=CLI_ACTOR,
            data={"user_id": target.id, "username": target.username, "totp_reset": bool(args.reset_totp)},
        )
        print(f"New password for {target.username}, shown once: {password}")
        return 0

    return asyncio.run(_with_db(config, body))


def cmd_token_create(args: argparse.Namespace) -> int:
    from .fleet.enrollment import create_enrollment_token, enrollment_command

    config = _config(args)

    async def body(db: Database) -> int:
        keys = await asyncio.to_thread(load_keys, config)
        token, _expires_at = await create_enrollment_token(
            db, keys, group=args.group, ttl=float(args.ttl), audit=AuditLog(db, keys), actor=CLI_ACTOR
        )
        print(f"Enrollment token for group {args.group!r}, single use, valid {int(args.ttl)} s:")
        print(f"  {token}")
        print("On the machine to enroll, run:")
        print(f"  {enrollment_command(config, token)}")
        return 0

    return asyncio.run(_with_db(config, body))


def cmd_audit_verify(args: argparse.Namespace) -> int:
    config = _config(args)

    async def body(db: Database) -> int:
        keys = await asyncio.to_thread(load_keys, config)
        result = await verify_chain(db, keys.org_public_key)
        if result.ok:
            signed = "none yet" if result.signed_head_seq is None else f"up to seq {result.signed_head_seq}"
            print(f"audit chain ok: {result.checked} records; signed heads {signed}")
            return 0
        print(f"audit chain broken at seq {result.first_broken_seq}: {result.reason}")
        print(f"({result.checked} records before it verified)")
        return 1

    return asyncio.run(_with_db(config, body))


# -- parser ------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="steun", description="Steun remote-support server")
    parser.add_argument("--version", action="version", version=f"steun {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", help="data directory (default: $STEUN_DATA_DIR or ~/.local/share/steun)", default=None
    )
    verbs = parser.add_subparsers(dest="verb", required=True)

    init = verbs.add_parser(
        "init", parents=[common], help="create keys, certificate, database and the first admin"
    )
    init.add_argument("--admin-username", default="admin")
    init.add_argument(
        "--public-url", help="the URL people and agents use (its host goes into the certificate)"
    )
    init.add_argument(
        "--hostname", action="append", help="extra DNS name or IP for the certificate (repeatable)"
    )
    init.set_defaults(run=cmd_init)

    server = verbs.add_parser("server", parents=[common], help="run the server")
    server.add_argument("--host", help="listen address (overrides listen_host)")
    server.add_argument("--port", type=int, help="listen port (overrides listen_port)")
    server.set_defaults(run=cmd_server)

    demo = verbs.add_parser(
        "demo", help="a throwaway server on SQLite with this machine's agent; prints the URL and a login"
    )
    demo.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8443, help="port (default 8443; a free one if taken)")
    demo.add_argument("--keep", action="store_true", help="keep the data directory when the demo stops")
    demo.set_defaults(run=cmd_demo)

    user = verbs.add_parser("user", help="manage user accounts").add_subparsers(
        dest="user_verb", required=True
    )
    add = user.add_parser("add", parents=[common], help="create an account; prints its random password once")
    add.add_argument("username")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.TECHNICIAN.value)
    add.add_argument("--display-name")
    add.set_defaults(run=cmd_user_add)
    listing = user.add_parser("list", parents=[common], help="list accounts")
    listing.set_defaults(run=cmd_user_list)
    set_role = user.add_parser("set-role", parents=[common], help="change an account's role")
    set_role.add_argument("username")
    set_role.add_argument("role", choices=[r.value for r in Role])
    set_role.set_defaults(run=cmd_user_set_role)
    reset = user.add_parser("reset-password", parents=[common], help="give an account a new random password")
    reset.add_argument("username")
    reset.add_argument("--reset-totp", action="store_true", help="also turn two-factor sign-in off")
    reset.set_defaults(run=cmd_user_reset_password)

    token = verbs.add_parser("token", help="enrollment tokens").add_subparsers(
        dest="token_verb", required=True
    )
    create = token.add_parser("create", parents=[common], help="make a single-use enrollment token")
    create.add_argument("--group", default="default")
    create.add_argument(
        "--ttl", type=float, default=3600.0, help="seconds the token stays valid (default 3600)"
    )
    create.set_defaults(run=cmd_token_create)

    audit = verbs.add_parser("audit", help="the audit log").add_subparsers(dest="audit_verb", required=True)
    verify = audit.add_parser("verify", parents=[common], help="check the hash chain and the signed heads")
    verify.set_defaults(run=cmd_audit_verify)

    from .techcli import cli as techcli  # login, logout, connect, ssh, files: the technician's side

    techcli.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "tech", None) is not None or getattr(args, "tech_sync", None) is not None:
        from .techcli import cli as techcli

        logging.basicConfig(level=logging.WARNING, format="steun: %(message)s")
        return techcli.run(args)
    try:
        code: int = args.run(args)
    except ApiError as exc:
        print(f"steun: {exc.message}", file=sys.stderr)
        return 2
    except SteunServerError as exc:
        print(f"steun: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
