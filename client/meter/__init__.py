"""Meter client package. The generated messages and stubs live in ``meter.v1``:

    from meter.v1 import meter_pb2, meter_pb2_grpc
"""
