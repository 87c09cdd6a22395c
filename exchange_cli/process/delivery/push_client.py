"""The writing half of the registry API, on top of the pulling `RegistryClient` (auth, retries, errors).

Every write asks for the scope it needs (``pull,push`` on the target, ``pull`` on a mount's source,
``delete`` for rollbacks), so token registries issue tokens that allow it. A streamed upload body
cannot be sent twice: the upload's POST answers the authentication challenge first, so the PUT
that carries the bytes goes out already authorised.
"""

from __future__ import annotations

from typing import BinaryIO
from urllib.parse import urljoin

import requests

from ...image.errors import ImageError
from ...image.registry import RegistryClient, with_retries
from ...web.retries import TRANSIENT_STATUSES, Transient, retry_after

MOUNTED, UPLOAD_STARTED = "mounted", "upload-started"


class SizedStream:
    """A blob body of known length: requests then sends Content-Length instead of chunked encoding."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream, self.size = stream, size

    def __len__(self) -> int:
        return self.size

    def read(self, amount: int = -1) -> bytes:
        return self.stream.read(amount)


class PushClient(RegistryClient):
    def blob_exists(self, repository: str, digest: str) -> bool:
        subject = f"blob {digest}"

        def attempt() -> bool:
            with self._request("HEAD", repository, f"blobs/{digest}") as response:
                if response.status_code == 404:
                    return False
                self._raise_for_status(response, subject)
                return True

        return with_retries(self.retry, attempt, failure=f"{self.image}: checking {subject}")

    def start_upload(self, repository: str, *, mount: str | None = None, mount_from: str | None = None) -> tuple[str, str]:
        """(MOUNTED, "") when the registry mounted `mount` from `mount_from`, else (UPLOAD_STARTED, upload URL)."""
        scope = f"repository:{repository}:pull,push"
        # As requests sends them: a parameter that is None is left out.
        params = {name: value for name, value in (("mount", mount), ("from", mount_from))
                  if value is not None} if mount else None
        if mount_from:
            scope += f" repository:{mount_from}:pull"
        url = f"{self.base_url}/v2/{repository}/blobs/uploads/"
        with self._write("POST", url, scope=scope, params=params) as response:
            self._raise_for_status(response, f"an upload to {repository}")
            if response.status_code == 201 and mount:
                return MOUNTED, ""
            location = response.headers.get("Location")
            if not location:
                raise ImageError(f"{self.image}: registry {self.host} started an upload without a Location")
            return UPLOAD_STARTED, urljoin(url, location)

    def finish_upload(self, repository: str, location: str, digest: str, body: SizedStream) -> None:
        """The whole blob in one PUT (a monolithic upload), streamed from `body`."""
        headers = {"Content-Type": "application/octet-stream"}
        with self._write("PUT", location, scope=f"repository:{repository}:pull,push", params={"digest": digest},
                         headers=headers, data=body, replayable=False) as response:
            self._raise_for_status(response, f"the upload of blob {digest}")

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str | None:
        """PUT the manifest's exact bytes; the digest the registry says it stored."""
        url = f"{self.base_url}/v2/{repository}/manifests/{reference}"

        def attempt() -> str | None:
            with self._write("PUT", url, scope=f"repository:{repository}:pull,push", data=body,
                             headers={"Content-Type": media_type}) as response:
                self._raise_for_status(response, f"manifest {reference}")
                return response.headers.get("Docker-Content-Digest")

        return with_retries(self.retry, attempt, failure=f"{self.image}: pushing manifest {reference}")

    def delete_manifest(self, repository: str, reference: str) -> None:
        """DELETE a manifest by digest (which untags every tag on it) or, where the registry allows it, a tag."""
        url = f"{self.base_url}/v2/{repository}/manifests/{reference}"

        def attempt() -> None:
            with self._write("DELETE", url, scope=f"repository:{repository}:delete") as response:
                status = f"{response.status_code} {response.reason}"
                if response.status_code == 405:
                    raise ImageError(f"{self.image}: registry {self.host} does not allow deletes ({status})")
                if response.status_code == 400 and not reference.startswith("sha256:"):
                    raise ImageError(f"{self.image}: registry {self.host} deletes manifests only by digest, not tag "
                                     f"{reference} alone ({status}), and other tags name the same manifest")
                if response.status_code != 404:  # already gone is what we wanted
                    self._raise_for_status(response, f"manifest {reference}")

        with_retries(self.retry, attempt, failure=f"{self.image}: deleting manifest {reference}")

    def _write(self, method: str, url: str, *, scope: str, params: dict[str, str] | None = None,
               headers: dict[str, str] | None = None, data: bytes | SizedStream | None = None,
               replayable: bool = True) -> requests.Response:
        """One round trip; answers an authentication challenge only when the body can be sent again."""
        response = self._send_write(method, url, scope, params, headers, data)
        if replayable and self._answer_challenge(response, scope):
            response.close()
            response = self._send_write(method, url, scope, params, headers, data)
        if response.status_code in TRANSIENT_STATUSES:
            response.close()
            raise Transient(f"{method} {url} answered {response.status_code} {response.reason}",
                             retry_after(response))
        return response

    def _send_write(self, method: str, url: str, scope: str, params: dict[str, str] | None,
                    headers: dict[str, str] | None, data: bytes | SizedStream | None) -> requests.Response:
        # The upload URL comes from the registry: the transport's rules decide whether it may be
        # contacted and whether the registry's credentials go with it.
        return self._send(method, url, scope=scope, headers=headers, params=params, data=data, follow_redirects=False)
