"""A third-party backend runs frontdesk's whole storage contract: five lines."""

import pytest

from frontdesk.testing import StorageContractTests

from .audit_storage import AuditedStorage


class TestAuditedStorage(StorageContractTests):
    @pytest.fixture
    def storage(self) -> AuditedStorage:
        return AuditedStorage()
