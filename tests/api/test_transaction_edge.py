"""The request edge commits before answering: a commit that fails must not answer success."""

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.main import create_app
from domain.members.models import Member
from tests.factories import make_api_key


def test_a_failed_commit_answers_an_error_and_stores_nothing(committed_engine):
    with Session(committed_engine) as session:
        _, key = make_api_key(session, scope="app")
        session.commit()
    with committed_engine.begin() as conn:
        # A deferred constraint trigger fires at COMMIT, after the route returned its body.
        conn.exec_driver_sql("""
            CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'refused at commit' USING ERRCODE = 'check_violation'; END $$;
            CREATE CONSTRAINT TRIGGER refuse_members_at_commit AFTER INSERT ON members
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();
        """)
    try:
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            response = client.post("/v1/members", json={"source_channel": "app", "phone": "13800138000"},
                                   headers={"Authorization": f"Bearer {key}"})
        assert response.status_code >= 400 and response.status_code != 201
        assert set(response.json()) == {"error"}
        with Session(committed_engine) as session:
            assert session.exec(select(Member)).all() == []
    finally:
        with committed_engine.begin() as conn:
            conn.execute(sa.text("DROP TRIGGER refuse_members_at_commit ON members"))
            conn.execute(sa.text("DROP FUNCTION refuse_at_commit()"))
