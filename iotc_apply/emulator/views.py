"""Wire shapes: how the real service spells each record in each response.

The same object is spelled differently by different endpoints (`code` on the template list,
`templateCode` on its detail; `IsAcquired` on device list items; `createdby` on upgrade list
items; `newid` vs `newId`), and those differences are the quirks a client must survive, so
they live here, in one place, next to each other. Pure functions of records.
Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .store import Record

FileUrl = Callable[[Record], str]


def template_list_item(t: Record, stats: dict[str, int], fw: Record | None) -> dict[str, Any]:
    return {
        "guid": t["guid"], "code": t["code"], "name": t["name"], "description": t["description"],
        "firmwareGuid": fw["guid"] if fw else None, "createdDate": t["createdDate"],
        "updatedDate": t["updatedDate"], "attributeCount": stats["attributeCount"],
        "settingCount": 0, "commandCount": stats["commandCount"],
        "deviceCount": stats["deviceCount"], "ruleCount": 0, "isValidateTemplate": True,
        "isValidEdgeSupport": True, "isValidType2Support": True, "tag": t["tag"],
        "authType": t["authType"], "isEdgeSupport": t["isEdgeSupport"], "gatewaySupport": False,
        "isLowBandwidth": False, "isSolutionTemplate": False, "solutionName": None,
        "messageVersion": t["messageVersion"], "fileSupport": t["fileSupport"],
        "authenticationType": t["authType"], "greenGrass": t["greenGrass"],
        "wireless": t["wireless"], "onDemandCmd": False, "bytesCommandCnt": 0,
        "capability": None, "c2dOnDemand": False, "isIotEdgeEnable": False,
    }


def template_detail(t: Record, commands: list[Record], fw: Record | None,
                    device_count: int) -> dict[str, Any]:
    return {
        "guid": t["guid"], "templateCode": t["code"], "templateName": t["name"],
        "displayName": t["name"], "isEdgeSupport": t["isEdgeSupport"], "isIotEdgeEnable": False,
        "authType": t["authType"], "tag": t["tag"], "messageVersion": t["messageVersion"],
        "msgCode": t["msgCode"], "firmwareGuid": fw["guid"] if fw else None,
        "firmwareName": fw["name"] if fw else None, "createdDate": t["createdDate"],
        "createdBy": t["createdBy"], "updatedDate": t["updatedDate"],
        "updatedBy": t["updatedBy"], "isValidateTemplate": 1, "isValidEdgeSupport": 1,
        "isValidType2Support": 1, "isAttachedWithDevice": device_count > 0,
        "greenGrass": t["greenGrass"], "wireless": t["wireless"], "isLowBandwidth": False,
        "isSolutionTemplate": False, "c2dOnDemand": False,
        "property": {"description": t["description"], "dataFrequency": t["dataFrequency"],
                     "fileSupport": t["fileSupport"]},
        "commands": [command_item(c) for c in commands],
    }


def attribute_item(a: Record) -> dict[str, Any]:
    return {
        "guid": a["guid"], "localName": a["localName"], "displayName": a["localName"],
        "description": a["description"], "dataTypeName": a["dataTypeName"],
        "dataTypeGuid": a["dataTypeGuid"], "unit": a["unit"],
        "dataValidation": a["dataValidation"], "sequence": a["sequence"], "tag": a["tag"],
        "parentTemplateAttributeGuid": None, "aggregateType": a["aggregateType"],
        "aggregateTypeCount": len(a["aggregateType"]), "isTemplateAttributeUsed": False,
        "createdDate": a["createdDate"], "createdby": a["createdBy"],
        "updatedDate": a["updatedDate"],
    }


def command_item(c: Record) -> dict[str, Any]:
    # Exactly these keys: the official client builds its Command from the raw dict.
    return {
        "guid": c["guid"], "command": c["command"], "name": c["name"],
        "requiredParam": c["requiredParam"], "requiredAck": c["requiredAck"],
        "isOTACommand": c["isOTACommand"], "isTemplateCommandUsed": False,
        "updatedDate": c["updatedDate"], "createdDate": c["createdDate"], "tag": c["tag"],
    }


def device_list_item(d: Record, t: Record, entity_name: str) -> dict[str, Any]:
    # A captured live list item has `IsAcquired` with a capital I and no entityGuid.
    return {
        "guid": d["guid"], "uniqueId": d["uniqueId"], "displayName": d["displayName"],
        "isActive": d["isActive"], "deviceTemplateGuid": t["guid"],
        "deviceTemplateName": t["name"], "messageVersion": t["messageVersion"],
        "entityName": entity_name, "IsAcquired": 0,
        "isConnected": bool(d.get("isConnected")), "lastConnection": d.get("lastConnection"),
        "lastCommunication": None, "lastactivityDate": d.get("lastConnection"),
        "authType": t["authType"], "authenticationType": t["authType"],
        "deviceStatus": "Released", "firmwareupgradeGuid": None, "isSharedDevice": False,
        "isSolutionTemplate": False, "childDeviceCount": 0,
    }


def device_detail(d: Record, t: Record, entity: Record, cpid: str) -> dict[str, Any]:
    return {
        "guid": d["guid"], "uniqueId": d["uniqueId"], "displayName": d["displayName"],
        "isConnected": bool(d.get("isConnected")),
        "lastActivityDate": d.get("lastConnection"), "isActive": d["isActive"],
        "firmwareUpgradeGuid": None, "deviceTemplateGuid": t["guid"],
        "entityGuid": entity["guid"], "certificateGuid": None, "certificateName": None,
        "deviceTemplateAuthType": t["authType"], "entityName": entity["name"],
        "deviceTemplateName": t["name"], "note": d.get("note"), "cpId": cpid,
        "isAcquired": 0, "isParentAcquired": 0, "isEdgeSupport": t["isEdgeSupport"],
        "isIotEdgeEnable": False, "isLowBandwidth": False, "isSolutionTemplate": False,
        "messageVersion": t["messageVersion"], "parentDeviceGuid": None, "tag": None,
        "properties": d.get("properties") or [], "deviceStatus": "Released",
        "lastConnection": d.get("lastConnection"),
        "videoStreamResource": d.get("videoStreamResource"),
        "autoStartVideoStream": bool(d.get("autoStartVideoStream")),
        # AWS `DeviceInformation` (AE device yml) has them (fidelity audit C11)
        "createdDate": d.get("createdDate"),
    }


def entity_item(e: Record) -> dict[str, Any]:
    return {"guid": e["guid"], "name": e["name"], "parentEntityGuid": e["parentEntityGuid"],
            "childEntityLabel": e["childEntityLabel"], "description": e["description"],
            "createdDate": e["createdDate"], "updatedDate": e["updatedDate"]}


def entity_detail(e: Record) -> dict[str, Any]:
    return {**entity_item(e), "address": e["address"], "address2": e["address2"],
            "city": e["city"], "zipCode": e["zipCode"], "isDeleted": False}


def user_list_item(u: Record, entity_name: str, company: str) -> dict[str, Any]:
    return {"guid": u["guid"], "userId": u["userId"], "companyGuid": company,
            "firstName": u["firstName"], "lastName": u["lastName"], "roleName": u["roleName"],
            "roleGuid": u["roleGuid"], "entityName": entity_name, "entityGuid": u["entityGuid"],
            "isActive": u["isActive"], "contactNo": u["contactNo"],
            "name": f"{u['firstName']} {u['lastName']}", "isVerified": True, "isLocked": False}


def user_detail(u: Record, entity_name: str, company: str, cpid: str) -> dict[str, Any]:
    return {"userGuid": u["guid"], "userId": u["userId"], "companyGuid": company,
            "companyCpid": cpid, "firstName": u["firstName"], "lastName": u["lastName"],
            "roleName": u["roleName"], "roleGuid": u["roleGuid"], "entityName": entity_name,
            "entityGuid": u["entityGuid"], "isActive": u["isActive"],
            "contactNo": u["contactNo"], "dms-version": "1.0", "isCompanyAdmin": True,
            "createdDate": u["createdDate"]}


def firmware_list_item(fw: Record, t: Record | None, upgrades: list[Record]) -> dict[str, Any]:
    released = sum(1 for u in upgrades if not u["isDraft"])
    return {
        "guid": fw["guid"], "name": fw["name"], "hardware": fw["hardware"],
        "createdDate": fw["createdDate"], "createdby": fw["createdBy"],
        "updatedDate": fw["updatedDate"], "releaseCount": released,
        "draftCount": len(upgrades) - released, "isDeprecated": fw["isDeprecated"],
        "deviceTemplateGuid": fw["templateGuid"],
        "deviceTemplateCode": t["code"] if t else None,
        "deviceTemplateName": t["name"] if t else None, "description": fw["description"],
        "firmwareDescription": fw["description"], "isSolutionTemplate": False,
    }


def firmware_detail(fw: Record, t: Record | None, upgrades: list[Record],
                    files: dict[str, list[Record]], file_url: FileUrl,
                    nested_upgrades: bool) -> dict[str, Any]:
    items = [upgrade_item(u, fw, files.get(u["guid"], []), file_url) for u in upgrades]
    detail = firmware_list_item(fw, t, upgrades)
    detail.pop("createdby")
    detail.update(createdBy=fw["createdBy"], updatedBy=fw["updatedBy"],
                  firmwareUpgradeDescription=None,
                  # The AWS service nests the upgrade list one level deeper.
                  Upgrades={"Upgrade": items} if nested_upgrades else items)
    return detail


def upgrade_item(u: Record, fw: Record, files: list[Record], file_url: FileUrl) -> dict[str, Any]:
    urls = [{"name": f["name"], "url": file_url(f), "tag": f["tag"]} for f in files]
    return {
        "guid": u["guid"], "software": u["software"],
        "isDraft": "Draft" if u["isDraft"] else "Released", "createdDate": u["createdDate"],
        "updatedDate": u["updatedDate"], "description": u["description"],
        "createdBy": u["createdBy"], "updatedBy": u["updatedBy"], "urls": urls,
        "firmwareguid": fw["guid"], "name": fw["name"], "hardware": fw["hardware"],
        "firmwareUpgradeDescription": u["description"],
        "fileName": files[0]["name"] if files else None,
        "fileUrl": urls[0]["url"] if urls else None,
        "deviceTemplateGuid": fw["templateGuid"],
    }


def upgrade_list_item(u: Record, fw: Record, files: list[Record],
                      file_url: FileUrl) -> dict[str, Any]:
    urls = [{"name": f["name"], "url": file_url(f), "tag": f["tag"]} for f in files]
    return {
        "guid": u["guid"], "firmwareGuid": fw["guid"], "firmwareName": fw["name"],
        "firmwareDescription": fw["description"], "firmwareUpgradeDescription": u["description"],
        "fileName": files[0]["name"] if files else None,
        "isDraft": "Draft" if u["isDraft"] else "Released", "hardware": fw["hardware"],
        "software": u["software"], "createdDate": u["createdDate"], "createdby": u["createdBy"],
        "updatedDate": u["updatedDate"], "updatedByName": "Emulator Admin",
        "fileUrl": urls[0]["url"] if urls else None, "urls": urls,
    }


def file_item(f: Record, file_url: FileUrl) -> dict[str, Any]:
    # Exactly these keys: the official client builds its File from the raw dict.
    return {"guid": f["guid"], "file": file_url(f), "name": f["name"], "tag": f["tag"],
            "createdDate": f["createdDate"], "state": "Uploaded",
            "key": f"{f['module']}/{f['refGuid']}/{f['name']}"}
