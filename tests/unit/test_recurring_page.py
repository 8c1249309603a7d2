"""The Recurring tickets page's shell: what a reader and an editor get, and that it needs no inline script."""

import re

from ticketflow.web import recurring_page


def test_a_reader_gets_the_list_and_no_control_that_changes_a_template():
    page = recurring_page.render("/ticketflow", can_edit=False, default_timezone="America/Toronto")
    assert 'data-can-edit="false"' in page and 'id="templates"' in page and 'id="history-dialog"' in page
    for control in ("data-action", 'id="template-form"', 'id="action-dialog"', "New template"):
        assert control not in page, control


def test_an_editor_gets_the_form_the_actions_and_the_default_zone():
    page = recurring_page.render("/ticketflow", can_edit=True, default_timezone="America/Toronto")
    assert 'data-can-edit="true"' in page and 'data-default-timezone="America/Toronto"' in page
    assert 'id="template-form"' in page and 'id="action-dialog"' in page and 'data-action="create"' in page


def test_the_page_loads_its_one_script_from_the_app_and_has_no_inline_script():
    """The CSP admits scripts from this origin (or with a nonce): the page takes the first, so no handler or
    inline block may hide in the template."""
    page = recurring_page.render("/prefix/ticketflow", can_edit=True, default_timezone="UTC")
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/prefix/ticketflow/static/recurring.js">']
    assert "</script>" in page and re.search(r"<script[^>]*>\s*</script>", page)
    assert not re.search(r"\son[a-z]+\s*=", page) and "javascript:" not in page
    assert 'data-api="/prefix/ticketflow/recurring"' in page
