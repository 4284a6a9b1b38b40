"""Scheduling: the clinic's chairs, hours and closures, and courses planned from the chart.

A course (an induction series by the modality's usual pattern, or the next maintenance session)
is proposed date by date, each checked against the clinic's hours, closures and holidays, the
chair's other bookings, the provider's and the patient's, and then booked all at once or not at
all. The day view shows what each chair holds.
"""
