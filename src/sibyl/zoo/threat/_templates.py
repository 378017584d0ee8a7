"""Templates and vocabularies for the security-threat generator.

A template has slots: ``{sig}`` is the class indicator (from ``INDICATORS`` or, sometimes, the
class-free ``AMBIGUOUS_INDICATORS``); every other slot is filled from ``SHARED_SLOTS``, which all
classes use. Indicators deliberately overlap in words ("password", "login", "attachment",
"traffic", "request") so that bag-of-words models must use combinations.
"""

from __future__ import annotations

CLASSES: tuple[str, ...] = (
    "sql_injection",
    "xss",
    "brute_force",
    "malware",
    "phishing",
    "ddos",
    "benign",
)
"""The seven labels, in the order of the ``category`` column's categories."""

INDICATORS: dict[str, tuple[str, ...]] = {
    "sql_injection": (
        "' OR 1=1 -- in the id parameter",
        "UNION SELECT payload",
        "sqlmap user agent",
        "stacked query with DROP TABLE",
        "information_schema probe",
        "time-based SLEEP(5) probe",
        "database error leaked in response",
        "quote-escaped login request",
    ),
    "xss": (
        "<script>alert(1)</script> payload",
        "onerror handler injection",
        "javascript: URI in link",
        "document.cookie read by injected script",
        "reflected script in search results",
        "stored script in comment",
        "svg onload payload",
        "iframe injection in request",
    ),
    "brute_force": (
        "multiple failed password attempts",
        "repeated authentication failures",
        "account lockout after failed login",
        "credential stuffing pattern",
        "password spraying across accounts",
        "invalid user login attempts",
        "dictionary attack on login",
        "failed SSH logins",
    ),
    "malware": (
        "trojan signature match",
        "ransomware file encryption behaviour",
        "unsigned executable from download folder",
        "beacon to command-and-control server",
        "macro dropper in attachment",
        "keylogger process",
        "worm propagation over SMB",
        "cryptominer process with high CPU",
    ),
    "phishing": (
        "spoofed sender domain",
        "credential harvesting login link",
        "lookalike domain in link",
        "fake invoice email",
        "urgent password reset email",
        "malicious attachment in email",
        "display name impersonation of the CEO",
        "QR code linking to fake login page",
    ),
    "ddos": (
        "SYN flood",
        "UDP amplification traffic",
        "sudden traffic spike",
        "request rate limit exceeded",
        "HTTP flood of GET requests",
        "botnet traffic from many sources",
        "bandwidth saturation",
        "slowloris connection exhaustion",
    ),
    "benign": (
        "scheduled backup completed",
        "successful login",
        "password changed by user",
        "software update installed",
        "certificate renewed",
        "health check passed",
        "configuration reloaded",
        "user logged out",
    ),
}
"""Eight indicators per class; the ``{sig}`` slot is usually one of its class's."""

AMBIGUOUS_INDICATORS: tuple[str, ...] = (
    "anomalous activity",
    "suspicious request",
    "policy violation",
    "unusual traffic",
    "unexpected behaviour",
    "rule match",
    "threshold exceeded",
    "security event",
)
"""Indicators that say nothing about the class."""

CLASS_TEMPLATES: dict[str, tuple[str, ...]] = {
    "sql_injection": (
        "WAF blocked {sig} in parameter {param} on {path} from {ip}",
        "Query from {ip} to {path} contained {sig}",
        "Database on {host} logged {sig} for user {user}",
    ),
    "xss": (
        "WAF flagged {sig} in form field {param} on {path}",
        "Content filter stripped {sig} from request by {ip}",
        "Browser report: {sig} on page {path} for user {user}",
    ),
    "brute_force": (
        "{n} events: {sig} for user {user} from {ip} via {service}",
        "Authentication service on {host} saw {sig} for {user}",
        "{service} login: {sig} from {ip}",
    ),
    "malware": (
        "Endpoint agent on {host} detected {sig} in process {process}",
        "Antivirus quarantined file on {host}: {sig}",
        "EDR alert: {sig} launched by {user} on {host}",
    ),
    "phishing": (
        "Mail gateway flagged message to {user}: {sig}",
        "User {user} reported email with {sig}",
        "Inbound email from {country} domain with {sig} delivered to {user}",
    ),
    "ddos": (
        "Edge router saw {sig} toward {host} on port {port}",
        "Load balancer alert: {sig} from {n} sources on port {port}",
        "{sig} against {path} from {country} networks",
    ),
    "benign": (
        "{sig} on {host} for user {user}",
        "Audit log: {sig} by {user} from {ip}",
        "System {host} via {service}: {sig}",
    ),
}
"""Class-specific frames; their fixed words carry some signal of their own."""

GENERIC_TEMPLATES: tuple[str, ...] = (
    "Alert on {host}: {sig} from {ip}",
    "SIEM rule fired: {sig} (source {ip}, user {user})",
    "Security event {n}: {sig} detected on {host}",
    "IDS notice: {sig} involving {ip} on port {port}",
)
"""Frames every class uses; only ``{sig}`` tells the classes apart."""

SHARED_SLOTS: dict[str, tuple[str, ...]] = {
    "user": (
        "admin",
        "root",
        "jdoe",
        "asmith",
        "svc_backup",
        "guest",
        "oracle",
        "test",
        "mwilson",
        "finance01",
        "hr_portal",
        "deploy",
        "ubuntu",
        "ceo",
        "helpdesk",
    ),
    "host": (
        "web-01",
        "web-02",
        "db-01",
        "db-02",
        "mail-01",
        "vpn-gw",
        "fw-edge",
        "app-03",
        "ws-1142",
        "ws-0917",
        "laptop-jdoe",
        "dc-01",
        "files-01",
        "k8s-node-4",
    ),
    "path": (
        "/login",
        "/search",
        "/api/v1/items",
        "/admin",
        "/wp-login.php",
        "/checkout",
        "/index.php",
        "/comments",
        "/profile",
        "/reset-password",
        "/graphql",
        "/",
    ),
    "param": ("id", "q", "name", "comment", "user", "redirect", "page", "email", "sort"),
    "service": ("SSH", "RDP", "FTP", "VPN", "OWA", "SMB", "IMAP", "web portal"),
    "process": (
        "powershell.exe",
        "svchost.exe",
        "rundll32.exe",
        "python3",
        "winword.exe",
        "cmd.exe",
        "bash",
        "explorer.exe",
        "java",
    ),
    "country": ("RU", "CN", "US", "BR", "NL", "DE", "IN", "unknown"),
    "port": ("22", "80", "443", "445", "3389", "53", "25", "8080"),
}
"""Slot fillers shared by every class (``{ip}`` and ``{n}`` are drawn as numbers)."""
