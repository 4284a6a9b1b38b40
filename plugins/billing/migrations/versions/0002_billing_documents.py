"""billing documents a payer can rely on: drug products with their NDCs, claim NDC fields on charge
lines, one generic void record, superbill revisions (one valid superbill per patient and period),
replacement links on estimates and payments, and invoices and billed lines fixed below the app

Revision ID: 0002_billing_documents
Revises: 0001_billing
Create Date: 2026-12-03 09:00:00.000000
"""
import re
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
import core.models  # noqa: F401 - custom column types such as UTCDateTime
from alembic import op

from core.audit import immutable_trigger_sql


revision: str = '0002_billing_documents'
down_revision: Union[str, None] = '0001_billing'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LINKED = ("billing_estimate", "billing_payment")  # append-only tables that gain a replaces_id link


def _dialect() -> str:
    return op.get_bind().dialect.name


def _append_only(table: str) -> None:
    for statement in immutable_trigger_sql(_dialect(), table):
        op.execute(statement)


def _drop_append_only(table: str) -> None:
    if _dialect() == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")


def _billed_lines_fixed() -> None:
    """Billed charge lines reject UPDATE and DELETE; drafts stay editable (a conditional trigger)."""
    message = "billing_charge is append-only once billed"
    if _dialect() == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER billing_charge_billed_no_{event.lower()} BEFORE {event} ON billing_charge "
                       f"WHEN OLD.status = 'billed' BEGIN SELECT RAISE(ABORT, '{message}'); END")
    else:
        op.execute("CREATE OR REPLACE FUNCTION billing_charge_billed_fixed() RETURNS trigger AS $$ "
                   f"BEGIN RAISE EXCEPTION '{message}'; END; $$ LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER billing_charge_billed_no_change BEFORE UPDATE OR DELETE ON billing_charge "
                   "FOR EACH ROW WHEN (OLD.status = 'billed') EXECUTE FUNCTION billing_charge_billed_fixed()")


def _drop_billed_lines_fixed() -> None:
    if _dialect() == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS billing_charge_billed_no_update")
        op.execute("DROP TRIGGER IF EXISTS billing_charge_billed_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS billing_charge_billed_no_change ON billing_charge")
        op.execute("DROP FUNCTION IF EXISTS billing_charge_billed_fixed()")


def _sqlite_foreign_keys(on: bool) -> None:
    """Downgrading rebuilds tables on SQLite (copy, drop, rename); dropping billing_payment while
    refunds point at its rows fails with foreign keys enforced. The pragma only works outside a
    transaction, hence the autocommit blocks (the downgrade is then not one transaction)."""
    if _dialect() == "sqlite":
        with op.get_context().autocommit_block():
            op.execute("COMMIT")  # core's engine opens BEGIN IMMEDIATE even here; the pragma needs none
            op.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")


def _eleven_digits(raw: str) -> str:
    """An NDC as stored before (12345-6789-01) in the 11-digit claim form, when it has that shape."""
    match = re.fullmatch(r"(\d{4,5})-(\d{3,4})-(\d{1,2})", raw or "")
    if not match:
        return raw or ""
    labeler, product, package = match.groups()
    return labeler.zfill(5) + product.zfill(4) + package.zfill(2)


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table('billing_drug_product',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('ndc', sqlmodel.sql.sqltypes.AutoString(length=11), nullable=False),
    sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.Column('mg_per_unit', sa.Float(), nullable=False),
    sa.Column('dose_mg', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('clinic_id', 'code', 'dose_mg')
    )
    with op.batch_alter_table('billing_drug_product', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_drug_product_clinic_id'), ['clinic_id'], unique=False)

    # a clinic's ketamine NDC moves from its fee line to its stocked product, as it was entered
    # (a placeholder stays a placeholder, and is refused when a superbill is issued)
    for clinic_id, ndc in bind.execute(sa.text("SELECT clinic_id, ndc FROM billing_fee "
                                               "WHERE code = 'J3490' AND ndc <> ''")).all():
        bind.execute(sa.text("INSERT INTO billing_drug_product (clinic_id, code, label, ndc, unit, mg_per_unit, "
                             "dose_mg) VALUES (:c, 'J3490', :label, :ndc, 'ML', 50, 0)"),
                     {"c": clinic_id, "label": "Ketamine HCl injection, the clinic's vial stock",
                      "ndc": _eleven_digits(ndc)[:11]})
    with op.batch_alter_table('billing_fee', schema=None) as batch_op:
        batch_op.drop_column('ndc')

    with op.batch_alter_table('billing_charge', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drug_product_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('ndc_unit', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('ndc_quantity', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False,
                                      server_default=''))
        batch_op.create_foreign_key('fk_billing_charge_drug_product_id', 'billing_drug_product',
                                    ['drug_product_id'], ['id'])
    for row_id, ndc in bind.execute(sa.text("SELECT id, ndc FROM billing_charge WHERE ndc LIKE '%-%'")).all():
        bind.execute(sa.text("UPDATE billing_charge SET ndc = :n WHERE id = :i"), {"n": _eleven_digits(ndc), "i": row_id})
    _billed_lines_fixed()
    _append_only('billing_invoice')

    op.create_table('billing_void',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('document_type', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('voided_at', core.models.UTCDateTime(), nullable=False),
    sa.Column('voided_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.ForeignKeyConstraint(['voided_by_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('clinic_id', 'document_type', 'document_id')
    )
    with op.batch_alter_table('billing_void', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_void_clinic_id'), ['clinic_id'], unique=False)
    op.execute("INSERT INTO billing_void (clinic_id, document_type, document_id, reason, voided_at, voided_by_id) "
               "SELECT clinic_id, 'superbill', superbill_id, reason, voided_at, voided_by_id "
               "FROM billing_superbill_void ORDER BY id")
    _append_only('billing_void')
    _drop_append_only('billing_superbill_void')
    op.drop_table('billing_superbill_void')

    # the revision backfill is an UPDATE: billing_superbill's triggers come off around it
    _drop_append_only('billing_superbill')
    with op.batch_alter_table('billing_superbill', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=False, server_default='0'))
    # one chain per patient, scope and period: earlier duplicates become successive revisions
    slots: dict = {}
    for row_id, clinic_id, patient_id, scope, start in bind.execute(sa.text(
            "SELECT id, clinic_id, patient_id, scope, period_start FROM billing_superbill ORDER BY id")).all():
        key = (clinic_id, patient_id, scope, str(start))
        if key in slots:
            slots[key] += 1
            bind.execute(sa.text("UPDATE billing_superbill SET revision = :r WHERE id = :i"),
                         {"r": slots[key], "i": row_id})
        else:
            slots[key] = 0
    with op.batch_alter_table('billing_superbill', schema=None) as batch_op:
        batch_op.create_index('ux_billing_superbill_slot', ['clinic_id', 'patient_id', 'scope', 'period_start',
                                                            'revision'], unique=True)
    _append_only('billing_superbill')
    # a plain ADD COLUMN on SQLite: rebuilding billing_payment would fail on refunds that point at it
    for table in LINKED:
        if _dialect() == "sqlite":
            op.execute(f"ALTER TABLE {table} ADD COLUMN replaces_id INTEGER REFERENCES {table} (id)")
        else:
            with op.batch_alter_table(table, schema=None) as batch_op:
                batch_op.add_column(sa.Column('replaces_id', sa.Integer(), nullable=True))
                batch_op.create_foreign_key(f'fk_{table}_replaces_id', table, ['replaces_id'], ['id'])


def downgrade() -> None:
    bind = op.get_bind()
    _sqlite_foreign_keys(False)
    for table in LINKED + ("billing_superbill",):
        _drop_append_only(table)
    for table in LINKED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            if _dialect() != "sqlite":  # SQLite's inline REFERENCES has no name; the rebuild drops it
                batch_op.drop_constraint(f'fk_{table}_replaces_id', type_='foreignkey')
            batch_op.drop_column('replaces_id')
    with op.batch_alter_table('billing_superbill', schema=None) as batch_op:
        batch_op.drop_index('ux_billing_superbill_slot')
        batch_op.drop_column('revision')

    op.create_table('billing_superbill_void',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('superbill_id', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('voided_at', core.models.UTCDateTime(), nullable=False),
    sa.Column('voided_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.ForeignKeyConstraint(['superbill_id'], ['billing_superbill.id'], ),
    sa.ForeignKeyConstraint(['voided_by_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('superbill_id')
    )
    with op.batch_alter_table('billing_superbill_void', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_superbill_void_clinic_id'), ['clinic_id'], unique=False)
    op.execute("INSERT INTO billing_superbill_void (clinic_id, superbill_id, reason, voided_at, voided_by_id) "
               "SELECT clinic_id, document_id, reason, voided_at, voided_by_id FROM billing_void "
               "WHERE document_type = 'superbill' ORDER BY id")
    _drop_append_only('billing_void')
    op.drop_table('billing_void')
    for table in LINKED + ("billing_superbill", "billing_superbill_void"):
        _append_only(table)

    _drop_append_only('billing_invoice')
    _drop_billed_lines_fixed()
    with op.batch_alter_table('billing_charge', schema=None) as batch_op:
        batch_op.drop_constraint('fk_billing_charge_drug_product_id', type_='foreignkey')
        batch_op.drop_column('ndc_quantity')
        batch_op.drop_column('ndc_unit')
        batch_op.drop_column('drug_product_id')
    with op.batch_alter_table('billing_fee', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ndc', sqlmodel.sql.sqltypes.AutoString(length=13), nullable=False,
                                      server_default=''))
    for clinic_id, ndc in bind.execute(sa.text("SELECT clinic_id, ndc FROM billing_drug_product "
                                               "WHERE code = 'J3490' AND dose_mg = 0")).all():
        bind.execute(sa.text("UPDATE billing_fee SET ndc = :n WHERE clinic_id = :c AND code = 'J3490'"),
                     {"n": f"{ndc[:5]}-{ndc[5:9]}-{ndc[9:]}" if len(ndc) == 11 else ndc, "c": clinic_id})
    with op.batch_alter_table('billing_drug_product', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_drug_product_clinic_id'))
    op.drop_table('billing_drug_product')
    _sqlite_foreign_keys(True)
