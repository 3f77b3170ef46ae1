"""Settings from one TOML file, frozen, with every default written here and nowhere else.

`load_config(path)` refuses a file with an unknown key, a value of the wrong type or an
impossible value, naming the key (`server.listen: ...`). Relative paths are resolved against the
directory of the configuration file. docs/configuration.md documents every key.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
ASYMMETRIC_FAMILIES = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES384", "ES512"),
    "OKP": ("EdDSA",),
}
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")


class ConfigError(ValueError):
    """A configuration that pdp refuses to start with; the message names the key."""


@dataclass(frozen=True, slots=True)
class TlsSettings:
    cert: Path
    """The server's certificate chain (PEM)."""
    key: Path
    """The server's private key (PEM)."""
    client_ca: Path | None = None
    """CAs whose client certificates are accepted; the caller's identity is then `caller.*`."""
    require_client_cert: bool = True
    """Refuse connections without a client certificate signed by client_ca."""
    listen: str | None = None
    """host:port of a separate TLS listener; without it, server.listen itself uses TLS."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    listen: str = "127.0.0.1:50051"
    """host:port to serve on; port 0 picks a free port."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Largest request or response message."""
    max_batch_items: int = 100
    """Most items in one CheckBatch."""
    max_concurrent_rpcs: int = 64
    """Calls served at once; more are refused with RESOURCE_EXHAUSTED."""
    workers: int = 16
    """Threads that run handlers."""
    keepalive_seconds: int = 60
    """Interval of keepalive pings to clients."""
    keepalive_timeout_seconds: int = 20
    """A client that does not answer a ping within this is disconnected."""
    max_connection_idle_seconds: int = 300
    """An idle connection is closed after this."""
    max_connection_age_seconds: int = 3600
    """Every connection is closed (gracefully) after this, so clients rebalance."""
    max_connection_age_grace_seconds: int = 30
    """Time in-flight calls get when a connection reaches its maximum age."""
    shutdown_grace_seconds: int = 10
    """On SIGTERM or SIGINT, in-flight calls get this long to finish."""
    reflection: bool = True
    """Serve gRPC server reflection (for grpcurl and similar tools)."""
    tls: TlsSettings | None = None
    """[server.tls]: serve with TLS (and mutual TLS with client_ca)."""


@dataclass(frozen=True, slots=True)
class RequestLimits:
    max_string_bytes: int = 4096
    """Longest action, resource type, resource id or string value in a request."""
    max_depth: int = 8
    """Nesting of records and lists in resource attributes and context."""
    max_values: int = 1000
    """Values (leaves and containers) in one request's attributes and context together."""


@dataclass(frozen=True, slots=True)
class PolicySettings:
    dir: Path = Path("policies")
    """The policy folder (see docs/language.md)."""
    watch: bool = True
    """Reload when files in the folder change."""
    poll_seconds: float = 1.0
    """How often the folder is checked for changes."""
    validate_requests: str = "off"
    """Check each request's attributes against the folder's schema.toml: "off", "warn" (log
    what does not match and decide anyway) or "reject" (DENY with error.schema)."""


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    issuer: str
    """The exact `iss` claim of this issuer's tokens."""
    audiences: tuple[str, ...]
    """A token's `aud` must name at least one of these."""
    algorithms: tuple[str, ...]
    """Allowed signing algorithms, all of one family (RSA, EC or EdDSA). Never `none`, and never
    HMAC: a token issuer's keys are public keys."""
    jwks_file: Path | None = None
    """A JWKS file with the issuer's public keys."""
    jwks_url: str | None = None
    """A JWKS URL, fetched at start and when a token names an unknown key, at most once per
    `jwks_cooldown_seconds`."""
    jwks_cooldown_seconds: int = 300
    """Least time between two fetches of jwks_url after a good fetch (a failed fetch may be
    retried after 10 seconds)."""
    jwks_timeout_seconds: float = 3.0
    """How long a fetch of jwks_url may take."""
    leeway_seconds: int = 30
    """Clock skew allowed when checking exp, nbf and iat."""
    max_lifetime_seconds: int = 86_400
    """Longest accepted `exp - iat`."""
    required_claims: tuple[str, ...] = DEFAULT_REQUIRED_CLAIMS
    """Claims every token must carry (`sub` and `aud` are always checked)."""
    max_token_bytes: int = 8192
    """Longer tokens are refused before any decoding."""


@dataclass(frozen=True, slots=True)
class CredentialSettings:
    keys_file: Path = Path("secrets/keys.json")
    """HMAC keys and API keys (ids, apps, plans, digests): no secret is stored in it."""
    master_key_file: Path = Path("secrets/master.key")
    """The one secret: HMAC secrets are derived from it and API keys digested with it."""
    users_file: Path = Path("secrets/users.json")
    """Users for Basic credentials, with scrypt password hashes and their attributes."""
    usage_file: Path = Path("var/usage.json")
    """API key usage per day, kept across restarts."""
    hmac_window_seconds: int = 300
    """A signed request's timestamp may be this far from the server's clock, either side."""
    client_ca: Path | None = None
    """CAs for forwarded end-client certificates (Credentials.client_certificate)."""


@dataclass(frozen=True, slots=True)
class PlanSettings:
    name: str
    rate: float
    """Requests per second, on average."""
    burst: int
    """Requests that may come at once."""
    daily_quota: int
    """Requests per day (UTC)."""


@dataclass(frozen=True, slots=True)
class AuditSettings:
    path: Path = Path("var/audit/decisions.jsonl")
    """The decision log, JSON Lines."""
    max_bytes: int = 100 * 1024 * 1024
    """The log is rotated when it would grow past this."""
    keep: int = 10
    """Rotated files kept (decisions.jsonl.1 is the newest)."""
    fsync: bool = False
    """fsync after every write: survives a machine crash, costs throughput. Without it a record
    reaches the operating system before the answer is sent, which survives a pdp crash."""


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerSettings = field(default_factory=ServerSettings)
    policies: PolicySettings = field(default_factory=PolicySettings)
    issuers: tuple[IssuerSettings, ...] = ()
    audit: AuditSettings = field(default_factory=AuditSettings)
    requests: RequestLimits = field(default_factory=RequestLimits)
    credentials: CredentialSettings = field(default_factory=CredentialSettings)
    plans: tuple[PlanSettings, ...] = ()
    source: Path | None = None
    """The file this was read from, if any."""


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    try:
        return parse_config(document, base=path.parent, source=path)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def parse_config(document: dict[str, Any], base: Path, source: Path | None = None) -> Config:
    sections = ("server", "policies", "issuers", "audit", "requests", "credentials", "plans")
    _only_keys(document, "", sections)
    issuers = document.get("issuers", [])
    if not isinstance(issuers, list) or not all(isinstance(i, dict) for i in issuers):
        raise ConfigError("issuers: must be a list of tables ([[issuers]])")
    server = dict(document.get("server", {})) if isinstance(document.get("server"), dict) else {}
    tls = server.pop("tls", None)
    plans = document.get("plans", {})
    if not isinstance(plans, dict) or not all(isinstance(p, dict) for p in plans.values()):
        raise ConfigError("plans: must be tables, one per plan ([plans.NAME])")
    config = Config(
        server=dataclasses.replace(
            _section(ServerSettings, server, "server", base),
            tls=None if tls is None else _section(TlsSettings, tls, "server.tls", base),
        ),
        policies=_section(PolicySettings, document.get("policies", {}), "policies", base),
        issuers=tuple(
            _issuer(item, f"issuers[{number}]", base) for number, item in enumerate(issuers)
        ),
        audit=_section(AuditSettings, document.get("audit", {}), "audit", base),
        requests=_section(RequestLimits, document.get("requests", {}), "requests", base),
        credentials=_section(
            CredentialSettings, document.get("credentials", {}), "credentials", base
        ),
        plans=tuple(
            _section(
                PlanSettings, {**_plan_table(table, name), "name": name}, f"plans.{name}", base
            )
            for name, table in plans.items()
        ),
        source=source,
    )
    _validate(config)
    return config


# --- reading sections ----------------------------------------------------------------------------


def _only_keys(table: Any, where: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where or 'the file'}: must be a table")
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise ConfigError(f"{_join(where, key)}: unknown key{hint}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _section(kind: Any, table: Any, where: str, base: Path) -> Any:
    names = tuple(f.name for f in fields(kind))
    _only_keys(table, where, names)
    values = {key: _value(kind, key, value, where, base) for key, value in table.items()}
    for setting in fields(kind):
        # Default paths are relative to the configuration file too, like written ones.
        default = setting.default
        if setting.name not in values and isinstance(default, Path) and not default.is_absolute():
            values[setting.name] = base / default
    try:
        return kind(**values)
    except TypeError as error:  # a required key is missing
        missing = str(error).rsplit(" ", 1)[-1].strip("'")
        raise ConfigError(f"{_join(where, missing)}: required") from None


def _plan_table(table: dict[str, Any], name: str) -> dict[str, Any]:
    # The plan's name is the NAME of [plans.NAME]; a `name` key would be silently ignored.
    if "name" in table:
        raise ConfigError(f"plans.{name}.name: unknown key (the plan's name is the table's name)")
    return table


def _value(kind: Any, key: str, value: Any, where: str, base: Path) -> Any:
    """Check one value against the field's annotation and convert it (paths, tuples)."""
    annotation = next(str(f.type) for f in fields(kind) if f.name == key)
    name = _join(where, key)
    if annotation.startswith("Path"):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{name}: must be a path (a non-empty string)")
        return (base / value) if not Path(value).is_absolute() else Path(value)
    if annotation.startswith("tuple[str"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{name}: must be a list of non-empty strings")
        return tuple(value)
    if annotation.startswith("str"):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{name}: must be a non-empty string")
        return value
    if annotation == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: must be true or false")
        return value
    if annotation == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{name}: must be an integer")
        return value
    if annotation == "float":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{name}: must be a number")
        return float(value)
    raise AssertionError(f"no reader for {annotation}")  # pragma: no cover


def _issuer(table: Any, where: str, base: Path) -> IssuerSettings:
    settings: IssuerSettings = _section(IssuerSettings, table, where, base)
    return settings


# --- validation ----------------------------------------------------------------------------------


def _validate(config: Config) -> None:
    server = config.server
    _check_address(server.listen, "server.listen", "127.0.0.1:50051")
    for name in (
        "max_message_bytes", "max_batch_items", "max_concurrent_rpcs", "workers",
        "keepalive_seconds", "keepalive_timeout_seconds", "max_connection_idle_seconds",
        "max_connection_age_seconds",
    ):  # fmt: skip
        if getattr(server, name) < 1:
            raise ConfigError(f"server.{name}: must be at least 1")
    for name in ("max_connection_age_grace_seconds", "shutdown_grace_seconds"):
        if getattr(server, name) < 0:
            raise ConfigError(f"server.{name}: must not be negative")
    if config.policies.poll_seconds <= 0:
        raise ConfigError("policies.poll_seconds: must be positive")
    if config.policies.validate_requests not in ("off", "warn", "reject"):
        raise ConfigError("policies.validate_requests: must be off, warn or reject")
    for name in ("max_string_bytes", "max_depth", "max_values"):
        if getattr(config.requests, name) < 1:
            raise ConfigError(f"requests.{name}: must be at least 1")
    if config.audit.max_bytes < 1024:
        raise ConfigError("audit.max_bytes: must be at least 1024")
    if config.audit.keep < 1:
        raise ConfigError("audit.keep: must be at least 1")
    _validate_credentials(config)
    seen: set[str] = set()
    for number, issuer in enumerate(config.issuers):
        _validate_issuer(issuer, f"issuers[{number}]")
        if issuer.issuer in seen:
            raise ConfigError(f"issuers[{number}].issuer: `{issuer.issuer}` is configured twice")
        seen.add(issuer.issuer)


def _check_address(address: str, name: str, example: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name}: must be host:port, e.g. {example}")


def _validate_credentials(config: Config) -> None:
    tls = config.server.tls
    if tls is not None:
        if tls.require_client_cert and tls.client_ca is None:
            raise ConfigError("server.tls.client_ca: required with require_client_cert = true")
        if not tls.require_client_cert and tls.client_ca is not None:
            # gRPC's Python API either requires a client certificate or never asks for one: a
            # CA here would look like optional mutual TLS and silently do nothing.
            raise ConfigError(
                "server.tls.client_ca: has no effect with require_client_cert = false (client "
                "certificates are then not asked for); remove it, or require client certificates"
            )
        if tls.listen is not None:
            _check_address(tls.listen, "server.tls.listen", "127.0.0.1:50443")
    credentials = config.credentials
    if credentials.hmac_window_seconds < 1:
        raise ConfigError("credentials.hmac_window_seconds: must be at least 1")
    policies = config.policies.dir.resolve()
    for name in ("keys_file", "master_key_file", "users_file"):
        path = getattr(credentials, name).resolve()
        # SECURITY: the policy folder is shared, reviewed and often public; keys are not.
        if path == policies or policies in path.parents:
            raise ConfigError(f"credentials.{name}: must not be inside the policy folder")
    for plan in config.plans:
        if plan.rate <= 0 or plan.burst < 1 or plan.daily_quota < 1:
            raise ConfigError(
                f"plans.{plan.name}: rate must be positive, burst and daily_quota at least 1"
            )


def _validate_issuer(issuer: IssuerSettings, where: str) -> None:
    if not issuer.audiences:
        raise ConfigError(f"{where}.audiences: name at least one audience")
    if not issuer.algorithms:
        raise ConfigError(f"{where}.algorithms: name at least one algorithm")
    if any(algorithm.lower() == "none" for algorithm in issuer.algorithms):
        raise ConfigError(f"{where}.algorithms: `none` is never allowed")
    # SECURITY: one family per issuer. Mixing HMAC with public-key algorithms is how a token
    # signed with the public key as an HMAC secret gets accepted (RFC 8725, section 3.1).
    families = {
        family
        for family, members in ASYMMETRIC_FAMILIES.items()
        for algorithm in issuer.algorithms
        if algorithm in members
    }
    unknown = [
        a
        for a in issuer.algorithms
        if a not in HMAC_ALGORITHMS and not any(a in m for m in ASYMMETRIC_FAMILIES.values())
    ]
    if unknown:
        raise ConfigError(f"{where}.algorithms: unknown algorithm `{unknown[0]}`")
    if any(a in HMAC_ALGORITHMS for a in issuer.algorithms):
        raise ConfigError(
            f"{where}.algorithms: HMAC algorithms are not supported for token issuers; "
            "use RS*, PS*, ES* or EdDSA"
        )
    if len(families) > 1:
        raise ConfigError(
            f"{where}.algorithms: all algorithms of an issuer must be of one family "
            "(RSA, EC or EdDSA)"
        )
    if issuer.jwks_file is None and issuer.jwks_url is None:
        raise ConfigError(f"{where}: set jwks_file or jwks_url (or both)")
    if issuer.jwks_url is not None and not issuer.jwks_url.startswith(("https://", "http://")):
        raise ConfigError(f"{where}.jwks_url: must be an http(s) URL")
    for name in ("jwks_cooldown_seconds", "max_lifetime_seconds", "max_token_bytes"):
        if getattr(issuer, name) < 1:
            raise ConfigError(f"{where}.{name}: must be at least 1")
    if issuer.leeway_seconds < 0:
        raise ConfigError(f"{where}.leeway_seconds: must not be negative")
    if issuer.jwks_timeout_seconds <= 0:
        raise ConfigError(f"{where}.jwks_timeout_seconds: must be positive")
    if "sub" not in issuer.required_claims:
        raise ConfigError(f"{where}.required_claims: must include `sub` (who the subject is)")
