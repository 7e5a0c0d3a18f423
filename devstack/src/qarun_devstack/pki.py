"""A throw-away certificate authority for a real cluster's API server.

Pods verify the API server with the CA the controller-manager publishes (the
`kube-root-ca.crt` ConfigMap every service account token volume mounts), so a cluster
that runs pods needs a real CA and a serving certificate naming the in-cluster
addresses (`kubernetes.default.svc`, the Service's cluster IP). The API server also
authenticates to the kubelet with a client certificate from the same CA.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qarun_devstack.process import run

DAYS = "7"


@dataclass(frozen=True)
class ClusterPki:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def create(self, server_ips: list[str], server_names: list[str]) -> ClusterPki:
        """The CA, the API server's serving cert and its kubelet client cert."""
        self.directory.mkdir(parents=True, exist_ok=True)
        run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                "-keyout", self.ca_key, "-out", self.ca_cert, "-days", DAYS,
                "-subj", "/CN=qarun-devstack-ca",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            ],
            "creating the cluster CA",
        )  # fmt: skip
        sans = [f"IP:{ip}" for ip in server_ips] + [f"DNS:{name}" for name in server_names]
        self._issue("apiserver", "/CN=kube-apiserver", "serverAuth", ",".join(sans))
        # system:masters: the kubelet's webhook authorizer lets the API server read logs
        # and exec into pods, as kubeadm's apiserver-kubelet-client certificate does.
        self._issue(
            "apiserver-kubelet-client",
            "/O=system:masters/CN=kube-apiserver-kubelet-client",
            "clientAuth",
            None,
        )
        return self

    def _issue(self, name: str, subject: str, usage: str, sans: str | None) -> None:
        csr = self.directory / f"{name}.csr"
        run(
            [
                "openssl", "req", "-newkey", "rsa:2048", "-nodes",
                "-keyout", self.key(name), "-out", csr, "-subj", subject,
            ],
            f"creating the {name} key",
        )  # fmt: skip
        ext = self.directory / f"{name}.ext"
        lines = [
            "basicConstraints=CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={usage}",
        ]
        if sans:
            lines.append(f"subjectAltName={sans}")
        ext.write_text("\n".join(lines) + "\n")
        run(
            [
                "openssl", "x509", "-req", "-in", csr, "-CA", self.ca_cert,
                "-CAkey", self.ca_key, "-CAcreateserial", "-days", DAYS,
                "-out", self.cert(name), "-extfile", ext,
            ],
            f"signing the {name} certificate",
        )  # fmt: skip
