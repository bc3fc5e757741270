"""Which region's sv-notice owns a send: this one, or the recipient's home region's."""

from __future__ import annotations

from fastapi import Response

from edgelib.peers import DirectoryClient, UnknownUser
from edgelib.problems import PROBLEM_MEDIA_TYPE
from sv_notice.peers import NoticePeers, Recipient
from sv_notice.sending.schemas import ForwardedSend


class SendRouting:
    def __init__(
        self, region: str | None, directory: DirectoryClient | None, peers: NoticePeers
    ) -> None:
        self.region = region
        self.directory = directory
        self.peers = peers

    async def recipient(self, user_id: str | None, username: str | None) -> Recipient:
        """The recipient and their region (this one when there is no directory)."""
        if self.directory is None:
            if user_id is None:
                raise UnknownUser("sending by username needs sv-region's directory")
            return Recipient(user_id, self.region)
        if user_id is not None:
            entry = await self.directory.lookup_id(user_id)
        else:
            assert username is not None
            entry = await self.directory.lookup(username)
        return Recipient(entry.user_id, entry.region)

    def is_remote(self, recipient: Recipient) -> bool:
        return bool(self.region and recipient.region and recipient.region != self.region)

    async def forward(self, recipient: Recipient, send: ForwardedSend) -> Response:
        """Hand the send to the recipient's region; its answer is the answer."""
        assert recipient.region is not None
        answer = await self.peers.send(recipient.region, send.model_dump(mode="json"))
        media = answer.headers.get("content-type", "application/json")
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=PROBLEM_MEDIA_TYPE if "problem" in media else "application/json",
        )

    async def aclose(self) -> None:
        await self.peers.aclose()
        if self.directory is not None:
            await self.directory.aclose()
