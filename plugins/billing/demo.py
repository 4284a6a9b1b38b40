def seed(session, clinic):
    pass
