"""A protobuf schema for the part of Triton's model configuration that the export writes.

Triton reads config.pbtxt as protobuf text format of the message inference.ModelConfig
(model_config.proto in the triton-inference-server/common repository). Its generated
Python module ships only in tritonclient, whose dependency pins conflict with this
project's (ml-dtypes <= 0.5.4 against the 0.7 that onnx brings), so this module
declares the messages the export uses with descriptor_pb2, with the field names,
numbers and types of model_config.proto. text_format.Parse then rejects anything
Triton's parser would reject within that subset: unknown fields, invalid enum names
and values of the wrong type.

NOTE: checked field by field against the ModelConfig descriptor of tritonclient
2.73.0; fields the export does not write are left out.
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

FieldProto = descriptor_pb2.FieldDescriptorProto

PACKAGE = "inference"

DATA_TYPES = (
    "TYPE_INVALID",
    "TYPE_BOOL",
    "TYPE_UINT8",
    "TYPE_UINT16",
    "TYPE_UINT32",
    "TYPE_UINT64",
    "TYPE_INT8",
    "TYPE_INT16",
    "TYPE_INT32",
    "TYPE_INT64",
    "TYPE_FP16",
    "TYPE_FP32",
    "TYPE_FP64",
    "TYPE_STRING",
    "TYPE_BF16",
)
INSTANCE_KINDS = ("KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL")
TIMEOUT_ACTIONS = ("REJECT", "DELAY")

# Each message maps to its fields as (name, number, type, label, type name). The type
# name is set only for message and enum fields.
OPTIONAL = FieldProto.LABEL_OPTIONAL
REPEATED = FieldProto.LABEL_REPEATED
MESSAGES = {
    "ModelInput": [
        ("name", 1, FieldProto.TYPE_STRING, OPTIONAL, None),
        ("data_type", 2, FieldProto.TYPE_ENUM, OPTIONAL, ".inference.DataType"),
        ("dims", 4, FieldProto.TYPE_INT64, REPEATED, None),
        ("optional", 8, FieldProto.TYPE_BOOL, OPTIONAL, None),
    ],
    "ModelOutput": [
        ("name", 1, FieldProto.TYPE_STRING, OPTIONAL, None),
        ("data_type", 2, FieldProto.TYPE_ENUM, OPTIONAL, ".inference.DataType"),
        ("dims", 3, FieldProto.TYPE_INT64, REPEATED, None),
        ("label_filename", 4, FieldProto.TYPE_STRING, OPTIONAL, None),
    ],
    "ModelQueuePolicy": [
        ("timeout_action", 1, FieldProto.TYPE_ENUM, OPTIONAL, ".inference.ModelQueuePolicy.TimeoutAction"),
        ("default_timeout_microseconds", 2, FieldProto.TYPE_UINT64, OPTIONAL, None),
        ("allow_timeout_override", 3, FieldProto.TYPE_BOOL, OPTIONAL, None),
        ("max_queue_size", 4, FieldProto.TYPE_UINT32, OPTIONAL, None),
    ],
    "ModelDynamicBatching": [
        ("preferred_batch_size", 1, FieldProto.TYPE_INT32, REPEATED, None),
        ("max_queue_delay_microseconds", 2, FieldProto.TYPE_UINT64, OPTIONAL, None),
        ("preserve_ordering", 3, FieldProto.TYPE_BOOL, OPTIONAL, None),
        ("default_queue_policy", 6, FieldProto.TYPE_MESSAGE, OPTIONAL, ".inference.ModelQueuePolicy"),
    ],
    "ModelInstanceGroup": [
        ("name", 1, FieldProto.TYPE_STRING, OPTIONAL, None),
        ("count", 2, FieldProto.TYPE_INT32, OPTIONAL, None),
        ("gpus", 3, FieldProto.TYPE_INT32, REPEATED, None),
        ("kind", 4, FieldProto.TYPE_ENUM, OPTIONAL, ".inference.ModelInstanceGroup.Kind"),
    ],
    "ModelParameter": [
        ("string_value", 1, FieldProto.TYPE_STRING, OPTIONAL, None),
    ],
    "ModelConfig": [
        ("name", 1, FieldProto.TYPE_STRING, OPTIONAL, None),
        ("platform", 2, FieldProto.TYPE_STRING, OPTIONAL, None),
        ("max_batch_size", 4, FieldProto.TYPE_INT32, OPTIONAL, None),
        ("input", 5, FieldProto.TYPE_MESSAGE, REPEATED, ".inference.ModelInput"),
        ("output", 6, FieldProto.TYPE_MESSAGE, REPEATED, ".inference.ModelOutput"),
        ("instance_group", 7, FieldProto.TYPE_MESSAGE, REPEATED, ".inference.ModelInstanceGroup"),
        ("default_model_filename", 8, FieldProto.TYPE_STRING, OPTIONAL, None),
        ("dynamic_batching", 11, FieldProto.TYPE_MESSAGE, OPTIONAL, ".inference.ModelDynamicBatching"),
        ("parameters", 14, FieldProto.TYPE_MESSAGE, REPEATED, ".inference.ModelConfig.ParametersEntry"),
        ("backend", 17, FieldProto.TYPE_STRING, OPTIONAL, None),
    ],
}


def _add_fields(message: descriptor_pb2.DescriptorProto, fields: list[tuple]) -> None:
    for name, number, field_type, label, type_name in fields:
        field = message.field.add(name=name, number=number, type=field_type, label=label)
        if type_name:
            field.type_name = type_name


def _add_enum(container, name: str, values: tuple[str, ...]) -> None:
    enum = container.enum_type.add(name=name)
    for number, value in enumerate(values):
        enum.value.add(name=value, number=number)


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="fps_triton_model_config_subset.proto", package=PACKAGE, syntax="proto3"
    )
    _add_enum(file_proto, "DataType", DATA_TYPES)
    for name, fields in MESSAGES.items():
        message = file_proto.message_type.add(name=name)
        _add_fields(message, fields)
        if name == "ModelInstanceGroup":
            _add_enum(message, "Kind", INSTANCE_KINDS)
        if name == "ModelQueuePolicy":
            _add_enum(message, "TimeoutAction", TIMEOUT_ACTIONS)
        if name == "ModelConfig":
            # map<string, ModelParameter> parameters is a repeated nested entry message.
            entry = message.nested_type.add(name="ParametersEntry")
            entry.options.map_entry = True
            _add_fields(
                entry,
                [
                    ("key", 1, FieldProto.TYPE_STRING, OPTIONAL, None),
                    ("value", 2, FieldProto.TYPE_MESSAGE, OPTIONAL, ".inference.ModelParameter"),
                ],
            )
    return file_proto


def _model_config_class():
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.ModelConfig"))


ModelConfig = _model_config_class()


def parse_model_config(text: str):
    """Parse config.pbtxt text into a ModelConfig message, raising text_format.ParseError when it is invalid."""
    return text_format.Parse(text, ModelConfig())
