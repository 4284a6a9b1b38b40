from tests.support import login


def test_demo_admin_sees_plugin_page(app, client):
    login(app, client, "admin")
    page = client.get("/admin/plugins")
    assert page.status_code == 200
    for name in ("billing", "consent", "coordination"):
        assert name in page.text
